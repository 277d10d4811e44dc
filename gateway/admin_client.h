/*
 * admin_client.h - a blocking client of the admin listener, for the
 * commands that talk to a running sluice (`sluice top`, `sluice -t --diff`).
 */
#ifndef SLUICE_GATEWAY_ADMIN_CLIENT_H
#define SLUICE_GATEWAY_ADMIN_CLIENT_H

#include <stddef.h>

struct json_t;

/* Split "HOST:PORT" or "[IPV6]:PORT" into host and port (NUL-terminated,
 * within hlen and plen bytes).  Returns 0, or -1 when it is neither. */
int gw_admin_client_split(const char *admin, char *host, size_t hlen, char *port, size_t plen);

/*
 * GET `path` from host:port and parse the body as JSON.  The name is
 * resolved at each call, so that a restarted sluice, or a name that moved,
 * is found again; every socket call is bounded by a 2 s timeout, so an
 * unreachable address costs one call, not the terminal.  Returns the parsed
 * body (the caller owns it), or NULL with a message in err: unreachable,
 * an answer other than 200, or a body that is not JSON.
 */
struct json_t *gw_admin_client_get(const char *host, const char *port, const char *path, char *err,
				   size_t errlen);

#endif
