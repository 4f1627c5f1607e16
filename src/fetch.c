/*
 * fetch.c
 *		HTTPS GET of an identity provider's documents, through libcurl.
 *
 * Only the extension owner's functions and the JWKS worker call this: a URL
 * is a request the server makes.  What it allows: https only, for the URL
 * and for each of at most three redirects; the peer's certificate verified
 * against the system trust store (or jwt.jwks_ca_file), host name included;
 * at most JWT_FETCH_MAX_BYTES of body; jwt.jwks_timeout for the whole
 * transfer, connection included.  A cancel or a termination request stops
 * the transfer.
 *
 * Nothing here raises an error between curl_easy_init and
 * curl_easy_cleanup: the callbacks only copy into memory allocated before,
 * and set flags.  So no handle outlives an error, and no longjmp crosses
 * libcurl.  A failure is described in res->error, without the body (an
 * error page may echo anything).  A body that is not UTF-8 (RFC 8259 §8.1)
 * is a failure too, so that converting it cannot raise an error later.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "fetch.h"

#define JWT_FETCH_MAX_REDIRECTS	3

char	   *jwt_jwks_ca_file = NULL;
int			jwt_jwks_timeout = 10000;

typedef struct FetchState
{
	char	   *buf;			/* JWT_FETCH_MAX_BYTES + 1 bytes */
	size_t		len;
	bool		too_big;
	int			max_age;
	time_t		expires;		/* 0: none */
} FetchState;

/* Is url an https URL with a host?  (libcurl checks the rest.) */
bool
jwt_https_url(const char *url)
{
	return url != NULL && pg_strncasecmp(url, "https://", 8) == 0 && url[8] != '\0' &&
		url[8] != '/' && strpbrk(url, " \t\r\n") == NULL;
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	FetchState *st = (FetchState *) arg;
	size_t		n = size * nmemb;

	if (n > JWT_FETCH_MAX_BYTES - st->len)
	{
		st->too_big = true;
		return 0;				/* aborts the transfer */
	}
	memcpy(st->buf + st->len, data, n);
	st->len += n;
	return n;
}

/* a header's name, case-insensitive, followed by ':' */
static const char *
header_value(const char *line, size_t len, const char *name)
{
	size_t		nlen = strlen(name);

	if (len <= nlen || pg_strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
		return NULL;
	line += nlen + 1;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

static void
parse_cache_control(FetchState *st, const char *v, const char *end)
{
	while (v < end)
	{
		while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
			v++;
		if (end - v >= 8 && pg_strncasecmp(v, "max-age=", 8) == 0)
		{
			long		secs = 0;

			v += 8;
			if (v < end && *v == '"')
				v++;
			while (v < end && *v >= '0' && *v <= '9')
			{
				if (secs < 100L * 366 * 24 * 3600)
					secs = secs * 10 + (*v - '0');
				v++;
			}
			st->max_age = (int) Min(secs, (long) INT_MAX);
		}
		else if ((end - v >= 8 && pg_strncasecmp(v, "no-store", 8) == 0) ||
				 (end - v >= 8 && pg_strncasecmp(v, "no-cache", 8) == 0))
			st->max_age = 0;
		while (v < end && *v != ',')
			v++;
	}
}

static size_t
header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	FetchState *st = (FetchState *) arg;
	size_t		n = size * nmemb;
	const char *end = data + n;
	const char *v;

	while (end > data && (end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
	{
		/* a new response (after a redirect): forget the last one's */
		st->max_age = -1;
		st->expires = 0;
	}
	else if ((v = header_value(data, end - data, "cache-control")) != NULL)
		parse_cache_control(st, v, end);
	else if ((v = header_value(data, end - data, "expires")) != NULL)
	{
		char		date[128];
		size_t		dlen = Min((size_t) (end - v), sizeof(date) - 1);
		time_t		t;

		memcpy(date, v, dlen);
		date[dlen] = '\0';
		t = curl_getdate(date, NULL);
		/* an invalid date means already expired (RFC 9111 §5.3) */
		st->expires = t > 0 ? t : 1;
	}
	return n;
}

/*
 * Stop at a cancel or a termination request, raised by CHECK_FOR_INTERRUPTS
 * after cleanup.  Other interrupts (a barrier, a catch-up) do not end the
 * transfer: CHECK_FOR_INTERRUPTS would absorb them, and the fetch would
 * fail for nothing.
 */
static int
progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	(void) arg;
	(void) dltotal;
	(void) dlnow;
	(void) ultotal;
	(void) ulnow;
	return (QueryCancelPending || ProcDiePending) ? 1 : 0;
}

static void
ensure_curl(void)
{
	static bool done = false;

	if (!done)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not initialize libcurl")));
		done = true;
	}
}

void
jwt_fetch(const char *url, JwtFetchResult *res)
{
	FetchState	st;
	CURL	   *curl;
	CURLcode	rc;
	char		errbuf[CURL_ERROR_SIZE];
	long		status = 0;

	memset(res, 0, sizeof(*res));
	res->max_age = -1;
	if (!jwt_https_url(url))
	{
		strlcpy(res->error, "not an https URL", sizeof(res->error));
		return;
	}
	ensure_curl();
	memset(&st, 0, sizeof(st));
	st.max_age = -1;
	st.buf = palloc(JWT_FETCH_MAX_BYTES + 1);
	errbuf[0] = '\0';

	/* from here to curl_easy_cleanup, nothing raises an error */
	curl = curl_easy_init();
	if (curl == NULL)
	{
		pfree(st.buf);
		strlcpy(res->error, "could not create a libcurl handle", sizeof(res->error));
		return;
	}
	curl_easy_setopt(curl, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500		/* 7.85 */
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
#else
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS, (long) CURLPROTO_HTTPS);
	curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS, (long) CURLPROTO_HTTPS);
#endif
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(curl, CURLOPT_MAXREDIRS, (long) JWT_FETCH_MAX_REDIRECTS);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
	if (jwt_jwks_ca_file != NULL && jwt_jwks_ca_file[0] != '\0')
		curl_easy_setopt(curl, CURLOPT_CAINFO, jwt_jwks_ca_file);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long) jwt_jwks_timeout);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long) jwt_jwks_timeout);
	curl_easy_setopt(curl, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) JWT_FETCH_MAX_BYTES);
	curl_easy_setopt(curl, CURLOPT_USERAGENT, "jwt-postgresql");
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &st);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &st);
	curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);

	rc = curl_easy_perform(curl);
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(curl);

	CHECK_FOR_INTERRUPTS();

	res->http_status = status;
	res->max_age = st.max_age;
	if (st.expires != 0)
		res->expires = time_t_to_timestamptz((pg_time_t) st.expires);
	switch (rc)
	{
		case CURLE_OK:
			if (status != 200)
				snprintf(res->error, sizeof(res->error), "HTTP status %ld", status);
			else if (memchr(st.buf, '\0', st.len) != NULL)
				strlcpy(res->error, "the document holds a NUL byte", sizeof(res->error));
			else if (!pg_verify_mbstr(PG_UTF8, st.buf, (int) st.len, true))
				strlcpy(res->error, "the document is not valid UTF-8", sizeof(res->error));
			break;
		case CURLE_WRITE_ERROR:
		case CURLE_FILESIZE_EXCEEDED:
			if (st.too_big || rc == CURLE_FILESIZE_EXCEEDED)
				snprintf(res->error, sizeof(res->error), "the document is larger than %d kB",
						 JWT_FETCH_MAX_BYTES / 1024);
			else
				strlcpy(res->error, "could not store the document", sizeof(res->error));
			break;
		case CURLE_UNSUPPORTED_PROTOCOL:
			strlcpy(res->error, "redirected to a URL that is not https", sizeof(res->error));
			break;
		case CURLE_TOO_MANY_REDIRECTS:
			snprintf(res->error, sizeof(res->error), "more than %d redirects",
					 JWT_FETCH_MAX_REDIRECTS);
			break;
		case CURLE_OPERATION_TIMEDOUT:
			snprintf(res->error, sizeof(res->error), "no complete answer within %d ms",
					 jwt_jwks_timeout);
			break;
		default:
			snprintf(res->error, sizeof(res->error), "%s",
					 errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc));
			break;
	}
	if (res->error[0] != '\0')
	{
		pfree(st.buf);
		return;
	}
	st.buf[st.len] = '\0';
	res->ok = true;
	res->body = st.buf;
	res->len = st.len;
}
