package server

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"go.yaml.in/yaml/v3"
)

// FileConfig is the node's YAML configuration file (--config; its sections
// are described in docs/gateway.md, docs/queue.md and docs/telemetry.md).
// Each section is kept as a YAML node and decoded strictly by the
// component that owns it, so the file format lives next to the code it
// configures.
type FileConfig struct {
	Gateway   yaml.Node `yaml:"gateway"`
	Queues    yaml.Node `yaml:"queues"`
	Telemetry yaml.Node `yaml:"telemetry"`
}

// LoadFile reads and strictly decodes the configuration file: unknown keys
// are an error. An empty path gives an empty configuration.
func LoadFile(path string) (*FileConfig, error) {
	fc := &FileConfig{}
	if path == "" {
		return fc, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if err := ParseFile(b, fc); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, nil
}

// ParseFile strictly decodes a configuration file's bytes into fc.
func ParseFile(b []byte, fc *FileConfig) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(fc); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("more than one YAML document")
	}
	return nil
}

// check decodes and checks every section of fc, whatever roles the node
// runs: a file is valid or not as a whole.
func (fc *FileConfig) check() error {
	if _, err := gatewaySection(fc); err != nil {
		return err
	}
	if _, err := decodeQueues(fc); err != nil {
		return err
	}
	_, err := telemetrySectionOf(fc)
	return err
}

// DecodeSection strictly decodes one section node into dst: unknown keys
// are an error. An absent section leaves dst as it is.
func DecodeSection(n *yaml.Node, dst any) error {
	if n == nil || n.Kind == 0 {
		return nil
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}
