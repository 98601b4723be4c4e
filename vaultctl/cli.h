/* vaultctl/cli.h: what every command does with its own argv: the options
 * each command accepts, the dispatch of a group's subcommands, number
 * arguments. Results are exit codes (ctx.h). Single-threaded.
 */
#pragma once
#include <getopt.h>
#include "vaultctl/ctx.h"

/* Long options every command accepts after its name as well as before it. */
enum { OPT_JSON = 0x100, OPT_COMMON_LAST = 0x1ff };
#define COMMON_LONGOPTS                                                 \
	{ "json", no_argument, NULL, OPT_JSON },                        \
	{ "socket", required_argument, NULL, 's' },                     \
	{ "help", no_argument, NULL, 'h' }
#define COMMON_SHORTOPTS "s:h"

/* Returned by common_option() for an option it handled: keep parsing. */
#define OPT_CONTINUE (-1)
/* Handles --json, -s, -h (prints help, returns EXIT_OK) and unknown options
 * ('?' or anything else: a hint on stderr, EXIT_USAGE). */
int common_option(struct ctx *ctx, int c, const char *help);

/* A subcommand of a group (user, role, service, audit, rotate). */
struct subcommand {
	const char *name;
	int (*run)(struct ctx *ctx, int argc, char **argv);
	const char *summary;
};
/* Runs argv[1] of a group from table (NULL-terminated); help is the group's. */
int run_subcommand(struct ctx *ctx, const char *group, const struct subcommand *table, const char *help,
		   int argc, char **argv);

/* Parses a non-negative decimal integer <= max; -EINVAL otherwise. */
int parse_uint(const char *s, unsigned long max, unsigned long *ret);

/* getopt_long over a command's argv from argv[1] (optind reset each time). */
#define GETOPT(argc, argv, shortopts, longopts) getopt_long(argc, argv, shortopts, longopts, NULL)
