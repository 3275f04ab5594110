#ifndef GREETD_CLIBEVENT_SHIM_H
#define GREETD_CLIBEVENT_SHIM_H

/* The libevent headers greetd's Swift layer (module Libevent) uses. C only; no logic here. */
#include <event2/event.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#endif
