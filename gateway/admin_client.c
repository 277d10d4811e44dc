/*
 * admin_client.c - a blocking client of the admin listener; see
 * admin_client.h.
 *
 * One short connection per call (`connection: close`), read to EOF: the
 * admin listener answers small documents whole, and nothing here shares an
 * event loop with the gateway.  The body read is bounded (64 MiB, far above
 * any /status) so a wrong address that streams forever costs memory once.
 */
#include "gateway/admin_client.h"

#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "gateway/buf.h"

#define BODY_MAX (64u << 20)

int gw_admin_client_split(const char *admin, char *host, size_t hlen, char *port, size_t plen)
{
	const char *colon;
	if (admin[0] == '[') {
		const char *close = strchr(admin, ']');
		if (close == NULL || close[1] != ':' || (size_t)(close - admin - 1) >= hlen)
			return -1;
		memcpy(host, admin + 1, (size_t)(close - admin - 1));
		host[close - admin - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(admin, ':');
		if (colon == NULL || colon == admin || (size_t)(colon - admin) >= hlen || strchr(admin, ':') != colon)
			return -1;
		memcpy(host, admin, (size_t)(colon - admin));
		host[colon - admin] = '\0';
	}
	if (colon[1] == '\0' || strlen(colon + 1) >= plen || strspn(colon + 1, "0123456789") != strlen(colon + 1))
		return -1;
	strcpy(port, colon + 1);
	return 0;
}

static int connect_to(const char *host, const char *port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
	int gai = getaddrinfo(host, port, &hints, &res);
	if (gai != 0) {
		snprintf(err, errlen, "%s", gai_strerror(gai));
		return -1;
	}
	int fd = -1;
	snprintf(err, errlen, "cannot connect");
	for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		struct timeval tv = { 2, 0 };
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		snprintf(err, errlen, "cannot connect: %s", strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

json_t *gw_admin_client_get(const char *host, const char *port, const char *path, char *err, size_t errlen)
{
	int fd = connect_to(host, port, err, errlen);
	if (fd < 0)
		return NULL;
	char req[512];
	int rlen = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nhost: sluice\r\nconnection: close\r\n\r\n", path);
	struct gw_buf in = GW_BUF_INIT;
	char chunk[16384];
	ssize_t n = rlen > 0 && (size_t)rlen < sizeof(req) ? write(fd, req, (size_t)rlen) : -1;
	while (n >= 0 && (n = read(fd, chunk, sizeof(chunk))) > 0)
		if (gw_buf_append(&in, chunk, (size_t)n) < 0 || in.len > BODY_MAX)
			break;
	close(fd);
	json_t *root = NULL;
	const char *body = in.len ? memmem(in.data, in.len, "\r\n\r\n", 4) : NULL;
	if (body == NULL || in.len < 12 || memcmp(in.data + 9, "200", 3) != 0)
		snprintf(err, errlen, "unexpected answer from %s", path);
	else if ((root = json_loadb(body + 4, in.len - (size_t)(body + 4 - in.data), 0, NULL)) == NULL)
		snprintf(err, errlen, "%s is not JSON", path);
	gw_buf_finish(&in);
	return root;
}
