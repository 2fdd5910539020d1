/*
 * Fuzz target: the policy protocol framing and request parser, as mxacld
 * uses them on bytes from a client.
 */
#include <stdint.h>
#include <string.h>

#include "engine/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct request *r = req_new();
	size_t pos = 0;
	while (pos < size) {
		size_t len;
		const char *err;
		if (req_scan(buf + pos, size - pos, &len, &err) != REQ_SCAN_COMPLETE)
			break;
		req_reset(r);
		if (req_parse(r, buf + pos, len, &err)) {
			req_set_clock(r, true, 0);
			for (int i = 0; i < ATTR_COUNT; i++)
				(void)req_lower(r, (enum attr_id)i);
		}
		pos += len;
	}
	req_free(r);
	return 0;
}
