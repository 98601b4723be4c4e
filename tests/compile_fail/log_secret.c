/* Compiled by ctest, never linked. CASE_control must compile; the others must
 * not: the logger refuses secret material at compile time. */
#include "common/log.h"
#include "common/secret.h"

void f(struct secret *s, const char *name);
void f(struct secret *s, const char *name)
{
#if defined(CASE_control)
	log_info("loaded key '%s' (%zu bytes)", name, s->len);
#elif defined(CASE_secret_ptr)
	log_info("loaded key '%s' %p", name, (void *)0, s);
#elif defined(CASE_secret_bytes)
	log_info("loaded key '%s' %p", name, s->p);
#else
#error "no case"
#endif
}
