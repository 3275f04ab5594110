// Command go-greetd is the Go reference for greetd's benchmarks: the greeting server of Go's
// context tutorial written with net/http as a Go developer would today, with greetd's flags,
// routes, request ids and log format, so the two can be compared request for request. A
// request with `Accept: text/event-stream` (or `?stream=1`) gets the streaming greeting: the
// same loop, each tick also written as a server-sent event and flushed (http.Flusher).
//
// Build from the repository root (standard library only, no module downloads; the module is
// this folder, so the build runs inside it):
//
//	cd Benchmarks/go-greetd && go build -o ../../.build-bench/go-greetd .
//	go -C Benchmarks/go-greetd build -o ../../.build-bench/go-greetd .   # Go 1.20 or later
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Log levels as greetd's --log-level spells them, least severe first.
var levels = []string{"trace", "debug", "info", "notice", "warning", "error", "critical"}

const (
	levelInfo   = 2
	levelNotice = 3
)

// logger writes greetd's line format to standard error, one Write per line, unbuffered:
// 2026-11-25T10:48:50.123456Z info [request_id=17] Greetings are hard. Thinking...
type logger struct{ min int }

func (l logger) enabled(level int) bool { return level >= l.min }

// log writes one line; id may be empty (no [request_id=…]); kv are key, value pairs written
// after the message, sorted by key.
func (l logger) log(level int, id, msg string, kv ...string) {
	if !l.enabled(level) {
		return
	}
	var b strings.Builder
	b.WriteString(time.Now().UTC().Format("2006-01-02T15:04:05.000000Z"))
	b.WriteByte(' ')
	b.WriteString(levels[level])
	if id != "" {
		b.WriteString(" [request_id=")
		b.WriteString(id)
		b.WriteByte(']')
	}
	b.WriteByte(' ')
	b.WriteString(msg)
	pairs := make([][2]string, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		pairs = append(pairs, [2]string{kv[i], kv[i+1]})
	}
	sort.Slice(pairs, func(i, j int) bool { return pairs[i][0] < pairs[j][0] })
	for _, p := range pairs {
		b.WriteString(" " + p[0] + "=" + p[1])
	}
	b.WriteByte('\n')
	os.Stderr.Write([]byte(b.String()))
}

type server struct {
	delay, tick, maxDelay time.Duration
	log                   logger
	lastID                atomic.Uint64
	shuttingDown          atomic.Bool // set before the root context is cancelled
	greetings             sync.WaitGroup
}

// ServeHTTP gives every request an id (the counter moves for every request, as in greetd),
// sends it back as X-Request-Id and routes: / is the greeting, anything else 404.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := strconv.FormatUint(s.lastID.Add(1), 10)
	if client := r.Header.Get("X-Request-Id"); acceptableRequestID(client) {
		id = client
	}
	w.Header().Set("X-Request-Id", id)
	if r.URL.Path != "/" {
		reply(w, http.StatusNotFound, "404 page not found\n")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		reply(w, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed on /; use GET\n")
		return
	}
	delay, err := s.requestedDelay(r)
	if err != nil {
		reply(w, http.StatusBadRequest, err.Error()+"\n")
		return
	}
	s.greetings.Add(1)
	defer s.greetings.Done()
	if wantsStream(r) {
		s.stream(w, r, id, delay)
		return
	}
	s.greet(w, r, id, delay)
}

// greet is the seed's handler: think for delay, logging every tick, then answer; stop as soon
// as the request's context is done (the client went away, or shutdown ran out of budget).
func (s *server) greet(w http.ResponseWriter, r *http.Request, id string, delay time.Duration) {
	ctx := r.Context()
	s.log.log(levelInfo, id, "Handling greeting request")
	defer s.log.log(levelInfo, id, "Handled greeting request")

	// Every tick due within the delay is logged before the answer, as greetd does.
	ticksDue, ticks := int(delay/s.tick), 0
	thinking := func() {
		ticks++
		s.log.log(levelInfo, id, "Greetings are hard. Thinking...")
	}

	ticker := time.NewTicker(s.tick)
	defer ticker.Stop()
	timer := time.NewTimer(delay)
	defer timer.Stop()

	for {
		select {
		case <-ctx.Done():
			if s.shuttingDown.Load() {
				s.log.log(levelNotice, id, "Context Error: "+ctx.Err().Error()+" (cause: server shutting down)")
				w.Header().Set("Retry-After", "1")
				w.Header().Set("Connection", "close")
				reply(w, http.StatusServiceUnavailable, "server shutting down\n")
			} else {
				s.log.log(levelNotice, id, "Context Error: "+ctx.Err().Error())
			}
			return
		case <-ticker.C:
			if ticks < ticksDue { // a late tick racing the timer is not one more
				thinking()
			}
		case <-timer.C:
			for ticks < ticksDue { // the ticker lost the race on the final instant
				thinking()
			}
			reply(w, http.StatusOK, "Hello Gopher!\n")
			return
		}
	}
}

// stream is the streaming (SSE) greeting, the same loop as greet: every tick's log line is
// followed at once by an `event: thinking` written and flushed (http.Flusher), the end by an
// `event: greeting`, and net/http ends the chunked body when the handler returns. When the
// request's context is done it logs the same Context Error line as greet; past the shutdown
// budget it first writes `event: error` / `data: server shutting down` (net/http closes the
// connection after the handler returns: the server is shutting down).
func (s *server) stream(w http.ResponseWriter, r *http.Request, id string, delay time.Duration) {
	ctx := r.Context()
	flusher, ok := w.(http.Flusher)
	if !ok { // every net/http HTTP/1.x and HTTP/2 ResponseWriter is one
		reply(w, http.StatusInternalServerError, "streaming unsupported\n")
		return
	}
	header := w.Header()
	header.Set("Content-Type", "text/event-stream")
	header.Set("Cache-Control", "no-cache")
	if r.Method == http.MethodHead {
		w.WriteHeader(http.StatusOK)
		return
	}
	s.log.log(levelInfo, id, "Handling greeting request")
	defer s.log.log(levelInfo, id, "Handled greeting request")
	w.WriteHeader(http.StatusOK)
	flusher.Flush() // the head goes out now, before the first tick

	send := func(event, data string) {
		io.WriteString(w, "event: "+event+"\ndata: "+data+"\n\n")
		flusher.Flush()
	}
	ticksDue, ticks := int(delay/s.tick), 0
	thinking := func() {
		ticks++
		s.log.log(levelInfo, id, "Greetings are hard. Thinking...")
		send("thinking", "Greetings are hard. Thinking...")
	}

	ticker := time.NewTicker(s.tick)
	defer ticker.Stop()
	timer := time.NewTimer(delay)
	defer timer.Stop()

	for {
		select {
		case <-ctx.Done():
			if s.shuttingDown.Load() {
				s.log.log(levelNotice, id, "Context Error: "+ctx.Err().Error()+" (cause: server shutting down)")
				send("error", "server shutting down")
			} else {
				s.log.log(levelNotice, id, "Context Error: "+ctx.Err().Error())
			}
			return
		case <-ticker.C:
			if ticks < ticksDue {
				thinking()
			}
		case <-timer.C:
			for ticks < ticksDue {
				thinking()
			}
			send("greeting", "Hello Gopher!")
			return
		}
	}
}

// wantsStream: the client asks for the streaming greeting with `Accept: text/event-stream`
// (any q above 0, among other media ranges: `text/event-stream;q=0.9, */*` counts) or `?stream=1`.
func wantsStream(r *http.Request) bool {
	if r.URL.Query().Get("stream") == "1" {
		return true
	}
	for _, value := range r.Header.Values("Accept") {
		for _, element := range strings.Split(value, ",") {
			params := strings.Split(element, ";")
			if !strings.EqualFold(strings.TrimSpace(params[0]), "text/event-stream") {
				continue
			}
			accepted := true
			for _, param := range params[1:] {
				key, q, _ := strings.Cut(strings.TrimSpace(param), "=")
				if strings.EqualFold(strings.TrimSpace(key), "q") {
					if weight, err := strconv.ParseFloat(strings.TrimSpace(q), 64); err == nil && weight <= 0 {
						accepted = false
					}
				}
			}
			if accepted {
				return true
			}
		}
	}
	return false
}

// requestedDelay is ?delay= (capped at --max-delay), or --delay.
func (s *server) requestedDelay(r *http.Request) (time.Duration, error) {
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return 0, fmt.Errorf("invalid query string %s", goQuote(r.URL.RawQuery))
	}
	values, ok := query["delay"]
	if !ok {
		return s.delay, nil
	}
	text := values[0]
	delay, err := time.ParseDuration(text)
	if err != nil {
		return 0, fmt.Errorf("invalid delay %s: %v", goQuote(text), err)
	}
	if delay < 0 {
		return 0, fmt.Errorf("invalid delay %s: must not be negative", goQuote(text))
	}
	if delay > s.maxDelay {
		delay = s.maxDelay
	}
	return delay, nil
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// acceptableRequestID: 1 to 64 characters of A-Z a-z 0-9 . _ : -
func acceptableRequestID(v string) bool {
	if len(v) < 1 || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// goQuote quotes as the time package's errors do (and greetd): bytes outside printable
// ASCII as \xNN, " and \ escaped.
func goQuote(s string) string {
	const hex = "0123456789abcdef"
	b := []byte{'"'}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 0x80 || c < 0x20:
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		default:
			b = append(b, c)
		}
	}
	return string(append(b, '"'))
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-greetd: error: "+format+"\n", args...)
	os.Exit(code)
}

func main() {
	host := flag.String("host", "localhost", "Host to listen on ('localhost' or empty: 127.0.0.1).")
	port := flag.Int("port", 8080, "TCP port to listen on (0 picks a free one).")
	delay := flag.Duration("delay", 5*time.Second, "How long a greeting thinks before it answers.")
	tick := flag.Duration("tick", time.Second, "How often a thinking greeting logs 'Greetings are hard. Thinking...'.")
	maxDelay := flag.Duration("max-delay", time.Minute, "The largest ?delay= a client may ask for; larger values are capped to it.")
	shutdownTimeout := flag.Duration("shutdown-timeout", 2*time.Second, "On SIGTERM/SIGINT, how long greetings in flight may finish before they are cancelled.")
	logLevel := flag.String("log-level", "info", "Least severe level to log: "+strings.Join(levels, ", ")+".")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(2, "unexpected argument %q", flag.Arg(0))
	}

	minLevel := -1
	for i, name := range levels {
		if name == *logLevel {
			minLevel = i
		}
	}
	switch {
	case minLevel < 0:
		fail(2, "invalid --log-level %q (one of %s)", *logLevel, strings.Join(levels, ", "))
	case *port < 0 || *port > 65535:
		fail(2, "invalid --port %d", *port)
	case *tick <= 0:
		fail(2, "tick must be positive, got %v", *tick)
	case *delay < 0:
		fail(2, "delay must not be negative, got %v", *delay)
	case *maxDelay < 0:
		fail(2, "max-delay must not be negative, got %v", *maxDelay)
	case *delay > *maxDelay:
		fail(2, "delay %v is above max-delay %v", *delay, *maxDelay)
	case *shutdownTimeout < 0:
		fail(2, "shutdown-timeout must not be negative, got %v", *shutdownTimeout)
	}

	s := &server{delay: *delay, tick: *tick, maxDelay: *maxDelay, log: logger{min: minLevel}}
	if *host == "" || *host == "localhost" {
		*host = "127.0.0.1"
	}
	address := net.JoinHostPort(*host, strconv.Itoa(*port))
	ln, err := net.Listen("tcp", address)
	if err != nil {
		var opErr *net.OpError
		if errors.As(err, &opErr) {
			err = opErr.Err // "bind: address already in use", without repeating the address
		}
		fail(1, "cannot listen on %s: %v", address, err)
	}

	// Every request's context descends from root: cancelling it ends the greetings still
	// thinking when the shutdown budget runs out.
	root, cancelRoot := context.WithCancel(context.Background())
	defer cancelRoot()
	srv := &http.Server{
		Handler:           s,
		BaseContext:       func(net.Listener) context.Context { return root },
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.log.log(levelInfo, "", "Server listening on http://"+ln.Addr().String())

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	var sig os.Signal
	select {
	case sig = <-signals:
	case err := <-served:
		fail(1, "serve: %v", err)
	}
	s.log.log(levelNotice, "", "Received "+signalName(sig)+": draining", "budget", shutdownTimeout.String())

	// Shutdown closes the listener and idle connections and waits for the greetings in flight,
	// for up to the budget; a second signal stops waiting.
	ctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	go func() {
		select {
		case sig := <-signals:
			s.log.log(levelNotice, "", "Received "+signalName(sig)+" again: cancelling greetings in flight")
			cancel()
		case <-ctx.Done():
		}
	}()
	if err := srv.Shutdown(ctx); err != nil {
		s.log.log(levelNotice, "", "Cancelling greetings in flight")
		s.shuttingDown.Store(true)
		cancelRoot()
		waitAtMost(&s.greetings, time.Second)
		srv.Close()
	}
	cancel()
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		fail(1, "serve: %v", err)
	}
	s.log.log(levelNotice, "", "Stopped")
}

func signalName(sig os.Signal) string {
	if sig == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}

func waitAtMost(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}
