// Package httpguard is what every Plexus net/http listener does against
// slow and malformed clients: the server's header timeout, idle timeout and
// header size limit, request bodies read under an idle deadline (nginx's
// client_body_timeout) with failures typed as *ClientError, and the rule for
// when an answer must close the connection (an unread body, or chunked
// framing whose Content-Length net/http hides).
//
// It is specific to net/http; the gateway's decisions (routing, path
// normalisation, failure classification) do not depend on it.
package httpguard
