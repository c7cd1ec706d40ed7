package eventstore

import (
	"slices"
	"strings"

	"github.com/plexushq/plexus/engine"
)

// subjectRoot prefixes every event subject.
const subjectRoot = engine.SubjectPrefix + "events."

// Header names of the first stored format's event fields (the second
// keeps them in the payload), and of the engine's.
const (
	hdrID          = "Plexus-Id"
	hdrVersion     = "Plexus-Version"
	hdrSource      = "Plexus-Source"
	hdrCorrelation = "Plexus-Correlation"
	hdrCausation   = "Plexus-Causation"
	hdrMetadata    = "Plexus-Metadata"

	hdrMsgID         = "Nats-Msg-Id"
	hdrExpSubjSeq    = "Nats-Expected-Last-Subject-Sequence"
	hdrExpSubjSeqSub = "Nats-Expected-Last-Subject-Sequence-Subject"
	hdrStream        = "Nats-Stream"
	hdrSubject       = "Nats-Subject"
	hdrSequence      = "Nats-Sequence"
	hdrTimeStamp     = "Nats-Time-Stamp"
	hdrNumPending    = "Nats-Num-Pending"
	hdrStatus        = "Status"
)

// token writes a name as one subject token: '.' becomes '~', which names
// never contain, so the mapping can be reversed.
func token(s string) string {
	if strings.IndexByte(s, '.') < 0 {
		return s
	}
	return strings.ReplaceAll(s, ".", "~")
}

func untoken(s string) string {
	if strings.IndexByte(s, '~') < 0 {
		return s
	}
	return strings.ReplaceAll(s, "~", ".")
}

// streamPrefix is "plexus.events.<category>.<stream>." — every event of the
// stream has it, followed by the type token.
func streamPrefix(stream string) string {
	return subjectRoot + token(Category(stream)) + "." + token(stream) + "."
}

// streamFilter matches every event of a stream.
func streamFilter(stream string) string { return streamPrefix(stream) + "*" }

// filterSubjects turns a category and type filter into subject filters.
// A type filter also takes the appends of mixed types, whose matching
// events the reader keeps.
func filterSubjects(category string, types []string) []string {
	cat := "*"
	if category != "" {
		cat = token(category)
	}
	if len(types) == 0 {
		if category == "" {
			return []string{subjectRoot + ">"}
		}
		return []string{subjectRoot + cat + ".>"}
	}
	out := make([]string, 0, len(types)+1)
	for _, t := range types {
		if f := subjectRoot + cat + ".*." + token(t); !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return append(out, subjectRoot+cat+".*."+mixedType)
}

// splitSubject cuts an event subject into its stream and type tokens.
func splitSubject(subj string) (stream, typ string, ok bool) {
	rest, found := strings.CutPrefix(subj, subjectRoot)
	if !found {
		return "", "", false
	}
	i := strings.IndexByte(rest, '.')
	if i < 0 {
		return "", "", false
	}
	rest = rest[i+1:]
	j := strings.IndexByte(rest, '.')
	if j < 0 || strings.IndexByte(rest[j+1:], '.') >= 0 {
		return "", "", false
	}
	return rest[:j], rest[j+1:], true
}

// streamOfSubject is the stream of an event subject (the type of a
// second-format append is in its frame).
func streamOfSubject(subj string) (string, bool) {
	s, _, ok := splitSubject(subj)
	return untoken(s), ok
}

// parseSubject splits an event subject into stream and type.
func parseSubject(subj string) (stream, typ string, ok bool) {
	s, t, ok := splitSubject(subj)
	return untoken(s), untoken(t), ok
}
