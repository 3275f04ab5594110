/*
 * c-evhttp: the floor for greetd's benchmarks.
 *
 * A plain libevent 2.1 evhttp server with none of greetd's machinery: no abort detection (stock
 * evhttp stops reading a connection while its request is pending, so it never sees the client
 * leave), no contexts, no per-request logging, no metrics. It shows what the event loop and
 * evhttp cost on their own, for throughput and for memory per pending request.
 *
 *   GET / (or HEAD /), any query: 200 "Hello Gopher!\n" (text/plain; charset=utf-8) at once,
 *   unless the query has delay=D: then a one-shot timer answers after D. D is a Go-style
 *   duration with an integer value: 0, or N followed by ns, us, ms, s, m or h; it is capped at
 *   1m (greetd's default --max-delay). Anything else: 400 'invalid delay "D"'.
 *   Other paths: 404. Other methods on /: 405.
 *
 * Usage: c-evhttp [--host H] [--port P]   (default 127.0.0.1:8080; port 0 picks a free one)
 * Prints "Server listening on http://127.0.0.1:<port>" to stderr once it listens.
 * SIGTERM or SIGINT: the loop stops, pending requests are dropped, exit 0.
 *
 * Build, from the repository root:
 *   mkdir -p .build-bench && cc -O2 -Wall -Wextra -o .build-bench/c-evhttp Benchmarks/c-evhttp/server.c -levent
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

static const char greeting[] = "Hello Gopher!\n";
static const int64_t max_delay_us = 60LL * 1000 * 1000;

/* One delayed request: the request, then its timer (event_assign'ed in place, so a pending
 * request costs one allocation on top of evhttp's own). */
struct pending {
    struct evhttp_request *req;
    /* a struct event of event_get_struct_event_size() bytes follows */
};

static struct event *pending_timer(struct pending *p) { return (struct event *)(p + 1); }

static void reply(struct evhttp_request *req, int code, const char *reason, const char *body, size_t length,
                  int body_is_static)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "text/plain; charset=utf-8");
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    if (body_is_static)
        evbuffer_add_reference(out, body, length, NULL, NULL);
    else
        evbuffer_add(out, body, length);
    evhttp_send_reply(req, code, reason, NULL);
}

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
    reply(req, code, reason, text, strlen(text), 1);
}

static void greet(struct evhttp_request *req)
{
    reply(req, HTTP_OK, "OK", greeting, sizeof greeting - 1, 1);
}

/* The connection went away while its request was pending (evhttp_free at shutdown, or an
 * error evhttp noticed on its own): evhttp is about to free the request, so drop the timer. */
static void on_connection_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    struct pending *p = arg;
    event_del(pending_timer(p));
    free(p);
}

static void on_delay_over(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct pending *p = arg;
    struct evhttp_request *req = p->req;
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), NULL, NULL);
    free(p); /* the one-shot timer is no longer pending */
    greet(req);
}

/* Parses "0" or an integer followed by ns, us, ms, s, m or h, into microseconds (rounded up),
 * capped at max_delay_us. Returns -1 if the text is anything else. */
static int64_t parse_delay_us(const char *text)
{
    if (strcmp(text, "0") == 0)
        return 0;
    const char *s = text;
    int64_t n = 0;
    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (n > (INT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (*s - '0');
    }
    static const struct { const char *unit; int64_t ns; } units[] = {
        {"ns", 1}, {"us", 1000}, {"ms", 1000000}, {"s", 1000000000},
        {"m", 60000000000LL}, {"h", 3600000000000LL},
    };
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(s, units[i].unit) != 0)
            continue;
        int64_t cap_ns = max_delay_us * 1000;
        int64_t ns = n > cap_ns / units[i].ns ? cap_ns : n * units[i].ns;
        return (ns + 999) / 1000;
    }
    return -1;
}

static void handle(struct evhttp_request *req, void *arg)
{
    struct event_base *base = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || strcmp(path, "/") != 0) {
        reply_text(req, HTTP_NOTFOUND, "Not Found", "404 page not found\n");
        return;
    }
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        reply_text(req, HTTP_BADMETHOD, "Method Not Allowed", "method not allowed on /; use GET\n");
        return;
    }
    const char *query = evhttp_uri_get_query(uri);
    if (query == NULL) {
        greet(req);
        return;
    }
    struct evkeyvalq items = {0}; /* evhttp_parse_query_str initialises it */
    if (evhttp_parse_query_str(query, &items) != 0) {
        evhttp_clear_headers(&items);
        reply_text(req, HTTP_BADREQUEST, "Bad Request", "invalid query string\n");
        return;
    }
    const char *text = evhttp_find_header(&items, "delay");
    int64_t delay_us = text ? parse_delay_us(text) : 0;
    if (delay_us < 0) {
        char body[256];
        int n = snprintf(body, sizeof body, "invalid delay \"%.200s\"\n", text);
        evhttp_clear_headers(&items);
        reply(req, HTTP_BADREQUEST, "Bad Request", body, (size_t)n < sizeof body ? (size_t)n : sizeof body - 1, 0);
        return;
    }
    evhttp_clear_headers(&items);
    if (delay_us == 0) {
        greet(req);
        return;
    }
    struct pending *p = malloc(sizeof *p + event_get_struct_event_size());
    if (p == NULL) {
        reply_text(req, HTTP_INTERNAL, "Internal Server Error", "out of memory\n");
        return;
    }
    p->req = req;
    struct timeval tv = {.tv_sec = (time_t)(delay_us / 1000000), .tv_usec = (suseconds_t)(delay_us % 1000000)};
    if (evtimer_assign(pending_timer(p), base, on_delay_over, p) != 0 || evtimer_add(pending_timer(p), &tv) != 0) {
        free(p);
        reply_text(req, HTTP_INTERNAL, "Internal Server Error", "cannot arm timer\n");
        return;
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_connection_close, p);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: c-evhttp [--host H] [--port P]   (default 127.0.0.1:8080; port 0 picks a free one)\n");
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    long port = 8080;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL;
        size_t name_length = strcspn(arg, "=");
        if (arg[name_length] == '=')
            value = arg + name_length + 1;
        else if (i + 1 < argc)
            value = argv[i + 1], i++;
        if (strncmp(arg, "--host", name_length) == 0 && name_length == 6 && value) {
            host = value;
        } else if (strncmp(arg, "--port", name_length) == 0 && name_length == 6 && value) {
            char *end;
            errno = 0;
            port = strtol(value, &end, 10);
            if (errno || *end || end == value || port < 0 || port > 65535) {
                fprintf(stderr, "c-evhttp: error: invalid port \"%s\"\n", value);
                return 2;
            }
        } else if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (host[0] == '\0' || strcmp(host, "localhost") == 0)
        host = "127.0.0.1";

    signal(SIGPIPE, SIG_IGN); /* writes to a client that has gone must not kill the process */
    struct event_base *base = event_base_new();
    struct evhttp *http = base ? evhttp_new(base) : NULL;
    if (http == NULL) {
        fprintf(stderr, "c-evhttp: error: cannot create the event loop\n");
        return 1;
    }
    evhttp_set_gencb(http, handle, base);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(http, host, (ev_uint16_t)port);
    if (bound == NULL) {
        fprintf(stderr, "c-evhttp: error: cannot listen on %s:%ld: %s\n", host, port, strerror(errno));
        evhttp_free(http);
        event_base_free(base);
        return 1;
    }

    struct sockaddr_storage address;
    socklen_t length = sizeof address;
    char name[INET6_ADDRSTRLEN] = "?";
    unsigned bound_port = 0;
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&address, &length) == 0) {
        if (address.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
            inet_ntop(AF_INET6, &in6->sin6_addr, name, sizeof name);
            bound_port = ntohs(in6->sin6_port);
        } else {
            struct sockaddr_in *in4 = (struct sockaddr_in *)&address;
            inet_ntop(AF_INET, &in4->sin_addr, name, sizeof name);
            bound_port = ntohs(in4->sin_port);
        }
    }
    int v6 = address.ss_family == AF_INET6;
    fprintf(stderr, "Server listening on http://%s%s%s:%u\n", v6 ? "[" : "", name, v6 ? "]" : "", bound_port);
    fflush(stderr);

    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, base);
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, base);
    if (!sigterm || !sigint || evsignal_add(sigterm, NULL) || evsignal_add(sigint, NULL)) {
        fprintf(stderr, "c-evhttp: error: cannot handle signals\n");
        return 1;
    }

    event_base_dispatch(base);

    evhttp_free(http); /* frees every connection; their close callbacks free pending timers */
    event_free(sigterm);
    event_free(sigint);
    event_base_free(base);
    return 0;
}
