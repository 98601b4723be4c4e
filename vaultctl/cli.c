/* vaultctl/cli.c: see cli.h. */
#include <errno.h>
#include <stdio.h>
#include "common/number.h"
#include "vaultctl/cli.h"
#include "vaultctl/msg.h"

int common_option(struct ctx *ctx, int c, const char *help)
{
	switch (c) {
	case OPT_JSON:
		ctx->json = true;
		return OPT_CONTINUE;
	case 's':
		ctx->socket = optarg;
		return OPT_CONTINUE;
	case 'h':
		fputs(help, stdout);
		return EXIT_OK;
	default:
		/* getopt already named the bad option. */
		fputs("vaultctl: see --help for the options\n", stderr);
		return EXIT_USAGE;
	}
}

int run_subcommand(struct ctx *ctx, const char *group, const struct subcommand *table, const char *help,
		   int argc, char **argv)
{
	if (argc < 2 || streq(argv[1], "-h") || streq(argv[1], "--help")) {
		fputs(help, argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	for (const struct subcommand *s = table; s->name; s++)
		if (streq(argv[1], s->name))
			return s->run(ctx, argc - 1, argv + 1);
	return usage_error(group, "unknown command '%s %s'", group, argv[1]);
}

int parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	uint64_t v;

	if (number_parse_u64(s, 0, max, &v) < 0)
		return -EINVAL;
	*ret = (unsigned long)v;
	return 0;
}
