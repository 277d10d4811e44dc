/*
 * addr.h - listen and backend addresses (internal to conf/).
 *
 * A struct conf_addr keeps the text as written, for messages and logs, next
 * to the socket address it resolved to when the file was loaded.  Nothing
 * resolves again later: a snapshot never changes, and a hostname that moves
 * is picked up by a reload.
 */
#ifndef SLUICE_CONF_ADDR_H
#define SLUICE_CONF_ADDR_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/conf.h"
#include "conf/node.h"

/*
 * Resolve text[0..len), "IP:PORT", "[IPv6]:PORT" or "host:PORT", into *a;
 * port 0 is refused unless port0_ok.  A hostname's IPv4 address is preferred
 * when it has one.  On success returns 0 and replaces a->text (freeing the
 * old one) with a malloc'd copy of the text that a's owner frees.  On failure
 * returns -EINVAL with the reason, a phrase without the text, in why[0..whysz)
 * and *a unchanged, or -ENOMEM with a->text NULL.
 */
int conf__addr_resolve(const char *text, size_t len, bool port0_ok, struct conf_addr *a,
		       char *why, size_t whysz);

/*
 * Read field f as an address into *a, as the conf__value_*() readers do: an
 * absent field leaves *a alone and succeeds; an invalid one is reported as
 * "LABEL: invalid address 'TEXT': REASON" and fails.
 */
bool conf__addr_read(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		     bool port0_ok, struct conf_addr *a);

/* Whether a and b are the same socket address (family, address, port). */
bool conf__addr_same(const struct conf_addr *a, const struct conf_addr *b);

/* Whether a is an IPv4 or IPv6 address with port 0 ("any free port"). */
bool conf__addr_port_zero(const struct conf_addr *a);

#endif
