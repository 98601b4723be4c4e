/* common/cursor.h: bounded reads over untrusted bytes.
 * Every read checks the remaining length first; a failed read leaves the
 * cursor unchanged. Pointers returned borrow from the underlying buffer.
 */
#pragma once
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include "common/util.h"

struct cursor {
	const uint8_t *p;
	size_t len;
};
#define CURSOR(buf, n) ((struct cursor){ .p = (const uint8_t *)(buf), .len = (n) })

static inline int cur_take(struct cursor *c, size_t n, const uint8_t **ret)
{
	if (n > c->len)
		return -EBADMSG;
	*ret = c->p;
	c->p += n;
	c->len -= n;
	return 0;
}
static inline int cur_get_u8(struct cursor *c, uint8_t *ret)
{
	const uint8_t *p;
	int r = cur_take(c, 1, &p);
	if (r == 0)
		*ret = p[0];
	return r;
}
static inline int cur_get_u16(struct cursor *c, uint16_t *ret)
{
	const uint8_t *p;
	int r = cur_take(c, 2, &p);
	if (r == 0)
		*ret = get_be16(p);
	return r;
}
static inline int cur_get_u32(struct cursor *c, uint32_t *ret)
{
	const uint8_t *p;
	int r = cur_take(c, 4, &p);
	if (r == 0)
		*ret = get_be32(p);
	return r;
}
