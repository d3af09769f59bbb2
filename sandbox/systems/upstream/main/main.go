// The sandbox's upstream: go-httpbin's handlers, answering no cross-origin request with credentials.
//
// go-httpbin answers every request with `Access-Control-Allow-Origin: <the caller's origin>` and
// `Access-Control-Allow-Credentials: true`, and its /cookies echoes the cookies it was sent: any page a developer
// opens on another local port could read every loopback cookie through it (cookies ignore ports). Here its answers
// allow any origin without credentials, which a browser refuses to combine with cookies.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

func main() {
	// go-httpbin's own flags and defaults, so that the image's bare command and the sandbox's both still work
	host := flag.String("host", "0.0.0.0", "Host to listen on")
	port := flag.Int("port", 8080, "Port to listen on")
	flag.Parse()
	// a line per request on stderr, as go-httpbin's own command logs them (`sandbox logs upstream` follows them)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv := &http.Server{
		Addr:              net.JoinHostPort(*host, strconv.Itoa(*port)),
		Handler:           withoutCredentials(httpbin.New(httpbin.WithObserver(httpbin.StdLogObserver(logger)))),
		ReadHeaderTimeout: 5 * time.Second,
	}
	logger.Info(fmt.Sprintf("go-httpbin (no credentialed CORS) listening on http://%s", srv.Addr))
	if err := srv.ListenAndServe(); err != nil {
		logger.Error(fmt.Sprintf("error: %s", err))
		os.Exit(1)
	}
}

func withoutCredentials(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&noCredentials{ResponseWriter: w}, r)
	})
}

// noCredentials rewrites the CORS headers just before they are sent.
type noCredentials struct {
	http.ResponseWriter
	sent bool
}

func (w *noCredentials) WriteHeader(code int) {
	if !w.sent {
		w.sent = true
		h := w.Header()
		h.Del("Access-Control-Allow-Credentials")
		if h.Get("Access-Control-Allow-Origin") != "" {
			h.Set("Access-Control-Allow-Origin", "*")
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *noCredentials) Write(b []byte) (int, error) {
	if !w.sent {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(b)
}

// Flush keeps the streaming endpoints (/drip, /sse) streaming.
func (w *noCredentials) Flush() {
	if !w.sent {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's own writer.
func (w *noCredentials) Unwrap() http.ResponseWriter { return w.ResponseWriter }
