/*
 * env.h - ${VAR} substitution in a config's text (internal to conf/).
 *
 * Runs on the whole text before YAML sees it, so that a variable can stand
 * for any value (a port, a URL, a list written inline).  Line numbers are
 * kept: a variable whose value holds a line break is an error, so every
 * later FILE:LINE still points at the line the operator wrote.
 */
#ifndef SLUICE_CONF_ENV_H
#define SLUICE_CONF_ENV_H

#include <stddef.h>

#include "conf/diag.h"

/*
 * Expand `text` (len bytes, may hold NULs):
 *   ${NAME}          the variable's value; unset is an error
 *                    "FILE:LINE: ${NAME} is not set"
 *   ${NAME:-default} the value, or `default` when unset or empty
 *   $$               a literal '$'
 * NAME is [A-Za-z_][A-Za-z0-9_]*.  A '$' followed by anything else is kept
 * as written, and comments (a '#' at the start of a line or after a blank,
 * outside quotes) are copied untouched.
 *
 * Returns 0 and sets *out to a malloc'd copy the caller frees (NULL when
 * the text has no '$' at all: use text as is) and *outlen; -EINVAL with
 * the problems reported into d; or -ENOMEM.
 */
int conf__env_expand(struct conf__diags *d, const char *text, size_t len, char **out, size_t *outlen);

#endif
