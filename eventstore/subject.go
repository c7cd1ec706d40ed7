package eventstore

import (
	"strings"

	"github.com/plexushq/plexus/engine"
)

// subjectRoot prefixes every event subject.
const subjectRoot = engine.SubjectPrefix + "events."

// Header names of the event fields that do not travel in the subject.
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
	hdrBatchID       = "Nats-Batch-Id"
	hdrBatchSeq      = "Nats-Batch-Sequence"
	hdrBatchCommit   = "Nats-Batch-Commit"
	hdrStream        = "Nats-Stream"
	hdrSubject       = "Nats-Subject"
	hdrSequence      = "Nats-Sequence"
	hdrTimeStamp     = "Nats-Time-Stamp"
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
	out := make([]string, 0, len(types))
	for _, t := range types {
		out = append(out, subjectRoot+cat+".*."+token(t))
	}
	return out
}

// parseSubject splits an event subject into stream and type.
func parseSubject(subj string) (stream, typ string, ok bool) {
	rest, found := strings.CutPrefix(subj, subjectRoot)
	if !found {
		return "", "", false
	}
	parts := strings.Split(rest, ".")
	if len(parts) != 3 {
		return "", "", false
	}
	return untoken(parts[1]), untoken(parts[2]), true
}
