// Package docs embeds the HTTP API contract, docs/openapi.yaml (OpenAPI
// 3.1), so that every node serves the description of the API it runs at
// GET /openapi.yaml on its admin listener. The tests beside it hold a
// running node to the contract.
package docs

import _ "embed"

// OpenAPI is docs/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
