/* common/log.h: the one logger.
 * Libraries (common/, pkcs11/) log only at debug level; the daemon logs once,
 * where it decides. Secrets cannot be logged: every argument of a log_*()
 * call is checked at compile time and a struct secret (or a raw uint8_t
 * buffer pointer, which is how key bytes travel) is a compile error. Values,
 * PINs, passphrases and keys are never formatted; names are quoted.
 * Thread-safe (one write(2) per line).
 */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>
#include "common/util.h"

struct secret;

void log_set_max_level(int level);      /* LOG_ERR .. LOG_DEBUG; default LOG_INFO */
int log_get_max_level(void);
/* Optional second target: a file descriptor that also receives each line. */
void log_set_fd(int fd);                /* default 2 (stderr) */

/* Writes "<level> func: message[: strerror]" and returns err (so callers can
 * write 'return log_error_errno(r, ...)'). err < 0 appends vlt_strerror(err). */
int log_emit(int level, int err, const char *func, const char *fmt, ...) _printf_(4, 5);

#define LOG_ARG_IS_(x, T) __builtin_types_compatible_p(__typeof__(x), T)
#define LOG_REFUSE_SECRET_(x)                                                       \
	_Static_assert(!LOG_ARG_IS_(x, struct secret *) &&                          \
		       !LOG_ARG_IS_(x, const struct secret *) &&                    \
		       !LOG_ARG_IS_(x, struct secret) &&                            \
		       !LOG_ARG_IS_(x, uint8_t *) && !LOG_ARG_IS_(x, const uint8_t *), \
		       "secret material passed to a logger");
#define LOG_FE1_(m, x) m(x)
#define LOG_FE2_(m, x, ...) m(x) LOG_FE1_(m, __VA_ARGS__)
#define LOG_FE3_(m, x, ...) m(x) LOG_FE2_(m, __VA_ARGS__)
#define LOG_FE4_(m, x, ...) m(x) LOG_FE3_(m, __VA_ARGS__)
#define LOG_FE5_(m, x, ...) m(x) LOG_FE4_(m, __VA_ARGS__)
#define LOG_FE6_(m, x, ...) m(x) LOG_FE5_(m, __VA_ARGS__)
#define LOG_FE7_(m, x, ...) m(x) LOG_FE6_(m, __VA_ARGS__)
#define LOG_FE8_(m, x, ...) m(x) LOG_FE7_(m, __VA_ARGS__)
#define LOG_FE9_(m, x, ...) m(x) LOG_FE8_(m, __VA_ARGS__)
#define LOG_FE10_(m, x, ...) m(x) LOG_FE9_(m, __VA_ARGS__)
#define LOG_FE11_(m, x, ...) m(x) LOG_FE10_(m, __VA_ARGS__)
#define LOG_FE12_(m, x, ...) m(x) LOG_FE11_(m, __VA_ARGS__)
#define LOG_PICK_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, N, ...) N
/* At most 11 arguments after the format: more is a compile error. */
#define LOG_CHECK_ARGS_(...)                                                         \
	LOG_PICK_(__VA_ARGS__, LOG_FE12_, LOG_FE11_, LOG_FE10_, LOG_FE9_, LOG_FE8_,  \
		  LOG_FE7_, LOG_FE6_, LOG_FE5_, LOG_FE4_, LOG_FE3_, LOG_FE2_, LOG_FE1_) \
	(LOG_REFUSE_SECRET_, __VA_ARGS__)

#define log_full_errno(level, err, ...)                                         \
	({                                                                      \
		LOG_CHECK_ARGS_(__VA_ARGS__)                                    \
		int _l = (level), _e = (err);                                   \
		_l <= log_get_max_level() ? log_emit(_l, _e, __func__, __VA_ARGS__) : _e; \
	})

#define log_debug(...) (void)log_full_errno(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...) (void)log_full_errno(LOG_INFO, 0, __VA_ARGS__)
#define log_notice(...) (void)log_full_errno(LOG_NOTICE, 0, __VA_ARGS__)
#define log_warning(...) (void)log_full_errno(LOG_WARNING, 0, __VA_ARGS__)
#define log_error(...) (void)log_full_errno(LOG_ERR, 0, __VA_ARGS__)
#define log_debug_errno(r, ...) log_full_errno(LOG_DEBUG, (r), __VA_ARGS__)
#define log_warning_errno(r, ...) log_full_errno(LOG_WARNING, (r), __VA_ARGS__)
#define log_error_errno(r, ...) log_full_errno(LOG_ERR, (r), __VA_ARGS__)
