/*
 * top.h - `sluice top`, the terminal view of a running gateway.
 *
 *   sluice top [--admin HOST:PORT] [--interval SECONDS] [--count N]
 *
 * Polls GET /status; on a terminal it redraws in place, otherwise it prints
 * one frame after another (for logs and tests).  --count 0 runs until
 * interrupted.
 */
#ifndef SLUICE_GATEWAY_TOP_H
#define SLUICE_GATEWAY_TOP_H

/* argv[0] is "top".  Returns the process exit status. */
int gw_top_main(int argc, char **argv);

#endif
