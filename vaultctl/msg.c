/* vaultctl/msg.c: see msg.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include "vaultctl/ctx.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"

bool progress_drawn;

void progress_wipe(void)
{
	if (!progress_drawn)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	progress_drawn = false;
}

/* Messages quote server text (error messages, reasons, names) and the
 * command line: out_vfprintf() escapes them (output.h). */
int error(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	progress_wipe();
	fputs("vaultctl: ", stderr);
	va_start(ap, fmt);
	errno = saved;  /* for %m */
	out_vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return EXIT_ERROR;
}

void warning(const char *fmt, ...)
{
	va_list ap;

	progress_wipe();
	fputs("vaultctl: warning: ", stderr);
	va_start(ap, fmt);
	out_vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	progress_wipe();
	fputs("vaultctl: ", stderr);
	va_start(ap, fmt);
	out_vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, " (see 'vaultctl %s --help')\n", cmd);
	else
		fputs(" (see 'vaultctl --help')\n", stderr);
	return EXIT_USAGE;
}
