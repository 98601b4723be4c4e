/* common/log.c: see log.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>
#include "common/err.h"
#include "common/log.h"

static int log_max_level = LOG_INFO;
static int log_fd = 2;

void log_set_max_level(int level)
{
	log_max_level = level;
}

int log_get_max_level(void)
{
	return log_max_level;
}

void log_set_fd(int fd)
{
	log_fd = fd;
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR:
		return "error";
	case LOG_WARNING:
		return "warning";
	case LOG_NOTICE:
		return "notice";
	case LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

int log_emit(int level, int err, const char *func, const char *fmt, ...)
{
	char line[2048];
	size_t n;
	int k, saved = errno;
	va_list ap;

	if (level > log_max_level)
		return err;
	k = snprintf(line, sizeof(line), "%s: %s: ", level_name(level), func);
	n = k < 0 ? 0 : (size_t)k;
	if (n < sizeof(line)) {
		va_start(ap, fmt);
		k = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		va_end(ap);
		if (k > 0)
			n += (size_t)k;
	}
	if (err < 0 && n < sizeof(line)) {
		k = snprintf(line + n, sizeof(line) - n, ": %s", vlt_strerror(err));
		if (k > 0)
			n += (size_t)k;
	}
	if (n >= sizeof(line) - 1)
		n = sizeof(line) - 2;   /* truncated: keep room for the newline */
	/* Control characters from names (never values) are replaced so a line
	 * cannot be forged or split by input. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[n++] = '\n';
	(void)!write(log_fd, line, n);  /* one write: lines from threads do not interleave */
	errno = saved;
	return err;
}
