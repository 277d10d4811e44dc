/*
 * addr.c - from "HOST:PORT" to a socket address, once, at load time.
 *
 * Three spellings are accepted: "IP:PORT", "[IPv6]:PORT" and "host:PORT".
 * An IPv6 address needs its brackets, since its colons would otherwise hide
 * the port; the message says so rather than "cannot resolve".  Ports are
 * numeric only (no service names), so a typo can never resolve to some
 * unrelated service's port.
 *
 * A hostname's IPv4 address is preferred: sluice connects to exactly one
 * address, and inference servers started with --host 0.0.0.0 are not
 * reachable on the ::1 that glibc lists first for "localhost".
 *
 * Resolution blocks, which is why it happens only while a config is loaded,
 * never on the request path.
 */
#include "conf/addr.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/value.h"

/* An address split into what getaddrinfo() takes. */
struct hostport {
	char host[256];
	char port[8];
	struct addrinfo hints;
};

/* Split text[0..len) into host and port, checking the port; false with the
 * reason in `why` when the text is not one of the accepted spellings. */
static bool hostport_split(const char *text, size_t len, bool port0_ok, struct hostport *hp,
			   char *why, size_t whysz)
{
	const char *hs, *ps;
	size_t hlen, plen, pos = 0;
	uint64_t pv;

	hp->hints = (struct addrinfo){ .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
	if (len == 0 || memchr(text, '\0', len)) {
		snprintf(why, whysz, "expected HOST:PORT");
		return false;
	}
	if (text[0] == '[') {
		const char *close = memchr(text, ']', len);

		if (!close || close + 1 == text + len || close[1] != ':') {
			snprintf(why, whysz, "expected [IPv6]:PORT");
			return false;
		}
		hs = text + 1;
		hlen = (size_t)(close - hs);
		ps = close + 2;
		hp->hints.ai_family = AF_INET6;
		hp->hints.ai_flags |= AI_NUMERICHOST;
	} else {
		const char *colon = memrchr(text, ':', len);

		if (!colon) {
			snprintf(why, whysz, "no port (expected HOST:PORT)");
			return false;
		}
		if (memchr(text, ':', (size_t)(colon - text))) {
			snprintf(why, whysz, "an IPv6 address needs brackets, as in [::1]:8080");
			return false;
		}
		hs = text;
		hlen = (size_t)(colon - text);
		ps = colon + 1;
		hp->hints.ai_family = AF_UNSPEC;
	}
	plen = (size_t)(text + len - ps);
	if (hlen == 0 || hlen >= sizeof hp->host) {
		snprintf(why, whysz, "no host (expected HOST:PORT)");
		return false;
	}
	if (!conf__scan_u64(ps, plen, &pos, &pv) || pos != plen || plen > 5 || pv > 65535 ||
	    (pv == 0 && !port0_ok)) {
		snprintf(why, whysz, "port must be a number from %d to 65535", port0_ok ? 0 : 1);
		return false;
	}
	memcpy(hp->host, hs, hlen);
	hp->host[hlen] = '\0';
	snprintf(hp->port, sizeof hp->port, "%u", (unsigned)pv);
	return true;
}

int conf__addr_resolve(const char *text, size_t len, bool port0_ok, struct conf_addr *a,
		       char *why, size_t whysz)
{
	struct addrinfo *res, *ai, *pick;
	struct hostport hp;
	int rc;

	if (!hostport_split(text, len, port0_ok, &hp, why, whysz))
		return -EINVAL;
	rc = getaddrinfo(hp.host, hp.port, &hp.hints, &res);
	if (rc) {
		snprintf(why, whysz, "cannot resolve host: %s",
			 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
		return -EINVAL;
	}
	pick = res;
	for (ai = res; ai; ai = ai->ai_next)
		if (ai->ai_family == AF_INET) {
			pick = ai;
			break;
		}
	if (pick->ai_addrlen > sizeof a->sa) {
		freeaddrinfo(res);
		snprintf(why, whysz, "unsupported address family");
		return -EINVAL;
	}
	memset(&a->sa, 0, sizeof a->sa);
	memcpy(&a->sa, pick->ai_addr, pick->ai_addrlen);
	a->salen = (socklen_t)pick->ai_addrlen;
	freeaddrinfo(res);

	free(a->text);
	if (!(a->text = strndup(text, len)))
		return -ENOMEM;
	return 0;
}

bool conf__addr_read(struct conf__loader *l, const struct conf__field *f, const char *ctx,
		     bool port0_ok, struct conf_addr *a)
{
	const yaml_node_t *n;
	char why[160];
	int rc;

	if (!f->key)
		return true;
	if (!(n = conf__want(l, f, ctx, YAML_SCALAR_NODE)))
		return false;
	rc = conf__addr_resolve(conf__node_text(n), n->data.scalar.length, port0_ok, a, why,
				sizeof why);
	if (rc == -ENOMEM)
		conf__nomem(l);
	else if (rc)
		conf__err(l, n, "%s: invalid address '%s': %s", conf__label(l, f, ctx),
			  conf__show(l, n), why);
	return rc == 0;
}

bool conf__addr_same(const struct conf_addr *a, const struct conf_addr *b)
{
	if (a->sa.ss_family != b->sa.ss_family)
		return false;
	if (a->sa.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)&a->sa, *y = (const void *)&b->sa;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->sa.ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)&a->sa, *y = (const void *)&b->sa;

		return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
		       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
	}
	return a->salen == b->salen && memcmp(&a->sa, &b->sa, a->salen) == 0;
}

bool conf__addr_port_zero(const struct conf_addr *a)
{
	if (a->sa.ss_family == AF_INET)
		return ((const struct sockaddr_in *)(const void *)&a->sa)->sin_port == 0;
	if (a->sa.ss_family == AF_INET6)
		return ((const struct sockaddr_in6 *)(const void *)&a->sa)->sin6_port == 0;
	return false;
}
