/*
 * top.h - `sluice top`, the terminal view of a running gateway.
 *
 *   sluice top [--admin HOST:PORT|[IPV6]:PORT] [--interval SECONDS] [--count N]
 *
 * Polls GET /status; on a terminal it redraws in place and reads keys
 * (c, t, b, Tab: panes; s: sort; q: quit), otherwise it prints one frame
 * after another (for logs and tests).  A failed poll is shown and retried.
 * --count 0 runs until q or a signal.
 */
#ifndef SLUICE_GATEWAY_TOP_H
#define SLUICE_GATEWAY_TOP_H

/* argv[0] is "top".  Returns the process exit status: 0, 1 when the last
 * poll failed, 2 for bad arguments. */
int gw_top_main(int argc, char **argv);

#endif
