package httpguard

import (
	"net/http"
	"time"
)

var closeValue = []string{"close"}

// MustClose reports whether the answer to r must close the connection:
//   - r is HTTP/1 with a chunked body: net/http removes a Content-Length
//     sent beside Transfer-Encoding without telling the handler, and RFC
//     9112 §6.1 asks a server to close the connection after answering such
//     a request, so every chunked request is treated as one that may have
//     had both;
//   - r is HTTP/1 and its body has not been read to the end: keeping the
//     connection would mean reading the rest first, however slowly it
//     comes, and net/http would send 100 Continue to a client that asked
//     for it.
//
// HTTP/2 streams need neither: an unread body is reset with its stream.
func MustClose(r *http.Request, bodyUnread bool) bool {
	return r.ProtoMajor == 1 && (len(r.TransferEncoding) > 0 || bodyUnread)
}

// SetClose marks the answer to close the connection after it is sent.
func SetClose(h http.Header) { h["Connection"] = closeValue }

// HasBody reports whether r comes with a body (declared or chunked).
func HasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// AbandonBody is for an answer written without reading r's body (a
// refusal): the connection closes after the answer, and net/http is kept
// from waiting for the rest of the body first, however slowly it comes —
// it reads what remains up to 256 KiB before closing otherwise.
func AbandonBody(w http.ResponseWriter, r *http.Request) {
	if !HasBody(r) {
		return
	}
	if MustClose(r, true) {
		SetClose(w.Header())
	}
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
}
