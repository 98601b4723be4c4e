/* common/path.c: see path.h. */
#include <errno.h>
#include <string.h>
#include "common/path.h"

/* Explicit ranges rather than isalnum(): the answer must not depend on the
 * locale, and bytes >= 0x80 (UTF-8) must never pass. */
static bool char_alnum(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool char_segment(char c)
{
	return char_alnum(c) || c == '.' || c == '_' || c == '-';
}

/* Static so the caller can hand the reason straight to the API reply. The
 * segment number is 1-based; segments past the 8th are reported as too many
 * before their characters are looked at. */
static const char *const bad_char_reason[PATH_SEGMENTS_MAX] = {
	"segment 1 contains a character outside [A-Za-z0-9._-]",
	"segment 2 contains a character outside [A-Za-z0-9._-]",
	"segment 3 contains a character outside [A-Za-z0-9._-]",
	"segment 4 contains a character outside [A-Za-z0-9._-]",
	"segment 5 contains a character outside [A-Za-z0-9._-]",
	"segment 6 contains a character outside [A-Za-z0-9._-]",
	"segment 7 contains a character outside [A-Za-z0-9._-]",
	"segment 8 contains a character outside [A-Za-z0-9._-]",
};

const char *path_check(const char *path, unsigned min_segments)
{
	size_t len, i = 0;
	unsigned n = 0;

	if (!path || path[0] == '\0')
		return "path is empty";
	/* Bounded scan: a megabyte of input costs PATH_MAX_LEN + 1 reads. */
	len = strnlen(path, PATH_MAX_LEN + 1);
	if (len > PATH_MAX_LEN)
		return "path is longer than 520 characters";
	if (path[0] == '/' || path[len - 1] == '/')
		return "leading or trailing '/'";

	while (i <= len) {
		size_t start = i, seg;

		while (i < len && path[i] != '/')
			i++;
		seg = i - start;
		i++;                    /* past the '/' or the NUL */

		if (++n > PATH_SEGMENTS_MAX)
			return "more than 8 segments";
		if (seg == 0)
			return "empty segment";
		if (seg > PATH_SEGMENT_MAX)
			return "segment longer than 64 characters";
		for (size_t k = start; k < start + seg; k++)
			if (!char_segment(path[k]))
				return bad_char_reason[n - 1];
		if (path[start] == '.' && (seg == 1 || (seg == 2 && path[start + 1] == '.')))
			return "'.' and '..' are not allowed as segments";
	}

	if (n < min_segments) {
		if (min_segments == 2)
			return "a secret path needs a tenant and at least one more segment";
		return "path has too few segments";
	}
	return NULL;
}

int path_tenant(const char *path, char ret[PATH_SEGMENT_MAX + 1])
{
	size_t n;

	if (path_check(path, 1))
		return -EINVAL;
	n = strcspn(path, "/");         /* <= PATH_SEGMENT_MAX: checked above */
	memcpy(ret, path, n);
	ret[n] = '\0';
	return 0;
}

bool name_valid(const char *name)
{
	size_t n;

	if (!name || !char_alnum(name[0]))
		return false;
	n = strnlen(name, PATH_SEGMENT_MAX + 1);
	if (n > PATH_SEGMENT_MAX)
		return false;
	for (size_t i = 1; i < n; i++)
		if (!char_segment(name[i]))
			return false;
	return true;
}
