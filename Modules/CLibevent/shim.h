#ifndef GREETD_CLIBEVENT_SHIM_H
#define GREETD_CLIBEVENT_SHIM_H

/* System headers first. libevent's event-config.h defines _GNU_SOURCE; were it processed
 * before <features.h>, the system types below (fd_set, ...) would be declared differently here
 * than in Glibc's and Dispatch's Swift modules, and the modules would not import together. */
#include <sys/types.h>
#include <sys/time.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdint.h>
#include <stddef.h>

/* The libevent headers greetd's Swift layer (module Libevent) uses. C only; no logic here. */
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/http_struct.h>  /* evhttp_request's version fields: no accessor in 2.1 */
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#endif
