package gateway

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/plexushq/plexus/internal/httpx"
)

// The seed gateway's CORS lists (docs/gateway.md), used when the configuration gives none.
var (
	defaultCORSMethods = []string{"GET", "POST", "PUT", "DELETE", "OPTIONS"}
	defaultCORSHeaders = []string{"Origin", "X-Requested-With", "Content-Type", "Accept", "Authorization"}
	varyOrigin         = []string{hdrOrigin}
	varyPreflight      = []string{"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
	trueValue          = []string{"true"}
	starValue          = []string{"*"}
)

// cors is a compiled CORS policy. With "*" and no credentials the answer
// is "*"; otherwise only listed origins are echoed, never unknown ones.
type cors struct {
	any     bool
	origins map[string]bool
	creds   bool
	methods []string
	headers []string
	expose  []string
	maxAge  []string
}

func newCORS(c *CORSConfig) *cors {
	if c == nil {
		return nil
	}
	x := &cors{origins: map[string]bool{}, creds: c.AllowCredentials}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			x.any = true
		} else {
			x.origins[strings.ToLower(o)] = true
		}
	}
	methods, headers := c.AllowMethods, c.AllowHeaders
	if len(methods) == 0 {
		methods = defaultCORSMethods
	}
	if len(headers) == 0 {
		headers = defaultCORSHeaders
	}
	x.methods = []string{strings.Join(methods, ", ")}
	x.headers = []string{strings.Join(headers, ", ")}
	if len(c.ExposeHeaders) > 0 {
		x.expose = []string{strings.Join(c.ExposeHeaders, ", ")}
	}
	if c.MaxAge > 0 {
		x.maxAge = []string{strconv.Itoa(int(c.MaxAge.Seconds()))}
	}
	return x
}

// allowOrigin returns the Access-Control-Allow-Origin value, nil when the
// origin is not allowed.
func (c *cors) allowOrigin(origin []string) []string {
	if c.any && !c.creds {
		return starValue
	}
	if c.any || c.origins[strings.ToLower(origin[0])] {
		return origin[:1]
	}
	return nil
}

// handle decorates answers to cross-origin requests and answers preflights
// itself; it reports whether the request was answered.
func (c *cors) handle(ex *exchange) bool {
	r := ex.r
	origin := r.Header[hdrOrigin]
	if len(origin) == 0 {
		return false
	}
	h := ex.w.Header()
	allow := c.allowOrigin(origin)
	if r.Method == http.MethodOptions && len(r.Header[hdrRequestMethod]) > 0 {
		ex.route = "preflight"
		h[hdrVary] = varyPreflight
		if allow == nil {
			ex.status = http.StatusForbidden
			ex.beforeHead()
			httpx.WriteProblem(ex.w, httpx.NewProblem(http.StatusForbidden, "cors-origin-refused",
				fmt.Sprintf("origin %q is not allowed", truncate(origin[0], 200))))
			return true
		}
		h[hdrAllowOrigin] = allow
		h[hdrAllowMethods] = c.methods
		h[hdrAllowHeaders] = c.headers
		if c.creds {
			h[hdrAllowCreds] = trueValue
		}
		if c.maxAge != nil {
			h[hdrMaxAge] = c.maxAge
		}
		ex.status = http.StatusNoContent
		ex.beforeHead()
		ex.w.WriteHeader(http.StatusNoContent)
		return true
	}
	h[hdrVary] = varyOrigin
	ex.corsVary = true
	if allow != nil {
		h[hdrAllowOrigin] = allow
		if c.creds {
			h[hdrAllowCreds] = trueValue
		}
		if c.expose != nil {
			h[hdrExposeHeaders] = c.expose
		}
	}
	return false
}
