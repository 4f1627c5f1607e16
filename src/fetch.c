/*
 * fetch.c
 *		HTTPS GET of an identity provider's documents, through libcurl.
 *
 * A URL is a request the server makes: only the extension's owner or a
 * superuser may have one made, whatever EXECUTE was granted on the SQL
 * function, and jwt_fetch checks so itself (the owner's functions and the
 * JWKS worker, which runs as the owner, pass).  What it allows: https only,
 * for the URL and for each of at most three redirects; the peer's
 * certificate verified against jwt.jwks_ca_file alone when it is set, else
 * against the system trust store, host name included; at most
 * JWT_FETCH_MAX_BYTES of body; jwt.jwks_timeout for the whole transfer,
 * connection included.  A cancel or a termination request stops the
 * transfer.
 *
 * Nothing here raises an error between curl_easy_init and
 * curl_easy_cleanup: the callbacks only copy into memory allocated before,
 * and set flags.  So no handle outlives an error, and no longjmp crosses
 * libcurl.  A failure is described in res->error by a fixed message per
 * kind, without the body (an error page may echo anything) and without
 * libcurl's own text, which names addresses and ports (a caller could map
 * a network with it); that text goes to the server log only.  A body that
 * is not UTF-8 (RFC 8259 §8.1) is a failure too, so that converting it
 * cannot raise an error later.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "commands/extension.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "fetch.h"
#include "keystore.h"

#define JWT_FETCH_MAX_REDIRECTS	3

char	   *jwt_jwks_ca_file = NULL;
int			jwt_jwks_timeout = 10000;

typedef struct FetchState
{
	char	   *buf;			/* JWT_FETCH_MAX_BYTES + 1 bytes */
	size_t		len;
	bool		too_big;
	int			max_age;		/* Cache-Control max-age; -1: none */
	bool		no_store;		/* Cache-Control no-store or no-cache */
	time_t		expires;		/* Expires; 0: none */
	time_t		date;			/* Date; 0: none */
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

/* Does the directive at v (up to end) have this name, as a whole token? */
static bool
directive_is(const char *v, const char *end, const char *name)
{
	size_t		nlen = strlen(name);

	if ((size_t) (end - v) < nlen || pg_strncasecmp(v, name, nlen) != 0)
		return false;
	v += nlen;
	return v == end || *v == ',' || *v == '=' || *v == ' ' || *v == '\t' || *v == ';';
}

/*
 * Cache-Control (RFC 9111 §5.2.2): max-age, unless no-store or no-cache
 * says not to keep the answer at all, in whatever order or header line they
 * come: only a flag is set here, and jwt_fetch applies it after the last
 * header.
 */
static void
parse_cache_control(FetchState *st, const char *v, const char *end)
{
	while (v < end)
	{
		while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
			v++;
		if (directive_is(v, end, "max-age") && end - v > 7 && v[7] == '=')
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
		else if (directive_is(v, end, "no-store") || directive_is(v, end, "no-cache"))
			st->no_store = true;
		while (v < end && *v != ',')
			v++;
	}
}

/* an HTTP date, or 1 (long ago) when it does not parse */
static time_t
http_date(const char *v, const char *end)
{
	char		date[128];
	size_t		dlen = Min((size_t) (end - v), sizeof(date) - 1);
	time_t		t;

	memcpy(date, v, dlen);
	date[dlen] = '\0';
	t = curl_getdate(date, NULL);
	return t > 0 ? t : 1;
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
		st->no_store = false;
		st->expires = 0;
		st->date = 0;
	}
	else if ((v = header_value(data, end - data, "cache-control")) != NULL)
		parse_cache_control(st, v, end);
	else if ((v = header_value(data, end - data, "expires")) != NULL)
	{
		/* an invalid date means already expired (RFC 9111 §5.3) */
		st->expires = http_date(v, end);
	}
	else if ((v = header_value(data, end - data, "date")) != NULL)
	{
		time_t		t = http_date(v, end);

		/* an invalid Date is as good as none (RFC 9110 §6.6.1) */
		st->date = t > 1 ? t : 0;
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

/*
 * Only the extension's owner or a superuser may have the server make a
 * request, as jwt_issuer_trust and jwt_jwks_refresh check in SQL; here no
 * GRANT can get around it.
 */
static void
check_may_fetch(void)
{
	Oid			userid = GetUserId();
	Oid			extoid;

	if (superuser_arg(userid))
		return;
	extoid = get_extension_oid("jwt", true);
	if (OidIsValid(extoid) && userid == jwt_extension_owner(extoid))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("only the owner of extension jwt may fetch a URL")));
}

/*
 * What res->error says of a failed transfer: a fixed text per kind, never
 * libcurl's message (it names addresses and ports).
 */
static void
describe_failure(CURLcode rc, const FetchState *st, JwtFetchResult *res)
{
	const char *msg;

	switch (rc)
	{
		case CURLE_WRITE_ERROR:
		case CURLE_FILESIZE_EXCEEDED:
			if (st->too_big || rc == CURLE_FILESIZE_EXCEEDED)
			{
				snprintf(res->error, sizeof(res->error), "the document is larger than %d kB",
						 JWT_FETCH_MAX_BYTES / 1024);
				return;
			}
			msg = "could not store the document";
			break;
		case CURLE_UNSUPPORTED_PROTOCOL:
			msg = "redirected to a URL that is not https";
			break;
		case CURLE_TOO_MANY_REDIRECTS:
			snprintf(res->error, sizeof(res->error), "more than %d redirects",
					 JWT_FETCH_MAX_REDIRECTS);
			return;
		case CURLE_OPERATION_TIMEDOUT:
			snprintf(res->error, sizeof(res->error), "timed out: no complete answer within %d ms",
					 jwt_jwks_timeout);
			return;
		case CURLE_URL_MALFORMAT:
			msg = "malformed URL";
			break;
		case CURLE_COULDNT_RESOLVE_PROXY:
			msg = "could not resolve the proxy's host name";
			break;
		case CURLE_COULDNT_RESOLVE_HOST:
			msg = "could not resolve the host name";
			break;
		case CURLE_COULDNT_CONNECT:
			msg = "could not connect";
			break;
		case CURLE_PEER_FAILED_VERIFICATION:
			msg = "certificate verification failed";
			break;
		case CURLE_SSL_CACERT_BADFILE:
			msg = "could not load the trusted CA certificates";
			break;
		case CURLE_SSL_CONNECT_ERROR:
		case CURLE_SSL_CERTPROBLEM:
		case CURLE_SSL_CIPHER:
		case CURLE_SSL_ENGINE_NOTFOUND:
		case CURLE_SSL_ENGINE_SETFAILED:
		case CURLE_SSL_ENGINE_INITFAILED:
		case CURLE_SSL_SHUTDOWN_FAILED:
		case CURLE_SSL_CRL_BADFILE:
		case CURLE_SSL_ISSUER_ERROR:
		case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
		case CURLE_SSL_INVALIDCERTSTATUS:
		case CURLE_USE_SSL_FAILED:
			msg = "TLS handshake failed";
			break;
		case CURLE_GOT_NOTHING:
			msg = "the server closed the connection without answering";
			break;
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
			msg = "the connection failed during the transfer";
			break;
		case CURLE_PARTIAL_FILE:
			msg = "the answer ended early";
			break;
		case CURLE_WEIRD_SERVER_REPLY:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
		case CURLE_BAD_CONTENT_ENCODING:
			msg = "the answer is not valid HTTP";
			break;
		case CURLE_ABORTED_BY_CALLBACK:
			msg = "canceled";
			break;
		case CURLE_OUT_OF_MEMORY:
			msg = "out of memory in libcurl";
			break;
		default:
			snprintf(res->error, sizeof(res->error), "the transfer failed (libcurl error %d)",
					 (int) rc);
			return;
	}
	strlcpy(res->error, msg, sizeof(res->error));
}

void
jwt_fetch(const char *url, JwtFetchResult *res)
{
	FetchState	st;
	CURL	   *curl;
	CURLcode	rc;
	char		errbuf[CURL_ERROR_SIZE];
	long		status = 0;
	TimestampTz received;

	check_may_fetch();
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
	{
		/*
		 * That file only.  libcurl's default CA directory (Debian's is
		 * /etc/ssl/certs) would otherwise be searched too, and every public
		 * CA in it trusted; with a file or a directory set, libcurl loads no
		 * other default, and it never takes the operating system's native
		 * store unless CURLSSLOPT_NATIVE_CA asks.
		 */
		curl_easy_setopt(curl, CURLOPT_CAINFO, jwt_jwks_ca_file);
		curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
	}
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
	received = GetCurrentTimestamp();

	CHECK_FOR_INTERRUPTS();

	res->http_status = status;
	/* no-store or no-cache wins over any max-age of the same answer */
	res->max_age = st.no_store ? 0 : st.max_age;
	if (st.expires != 0)
	{
		/*
		 * The lifetime is Expires - Date by the provider's own clock (RFC
		 * 9111 §4.2.1), counted here from when the answer came: a provider
		 * whose clock is off still gets the lifetime it meant.  Without a
		 * Date, Expires is read by our clock.
		 */
		if (st.date != 0)
		{
			double		secs = difftime(st.expires, st.date);

			secs = Max(Min(secs, 100.0 * 366 * 24 * 3600), -100.0 * 366 * 24 * 3600);
			res->expires = received + (TimestampTz) (secs * USECS_PER_SEC);
		}
		else
			res->expires = time_t_to_timestamptz((pg_time_t) st.expires);
		/* 0 means none */
		if (res->expires == 0)
			res->expires = 1;
	}
	if (rc == CURLE_OK)
	{
		if (status != 200)
			snprintf(res->error, sizeof(res->error), "HTTP status %ld", status);
		else if (memchr(st.buf, '\0', st.len) != NULL)
			strlcpy(res->error, "the document holds a NUL byte", sizeof(res->error));
		else if (!pg_verify_mbstr(PG_UTF8, st.buf, (int) st.len, true))
			strlcpy(res->error, "the document is not valid UTF-8", sizeof(res->error));
	}
	else
	{
		describe_failure(rc, &st, res);

		/*
		 * libcurl's own words, for whoever reads the server log: the host,
		 * address and port it tried, the TLS library's reason.  No URL (it
		 * could hold credentials), no body.  Never sent to a client, whatever
		 * its client_min_messages.
		 */
		ereport(LOG_SERVER_ONLY,
				(errmsg("could not fetch an identity provider's document: %s", res->error),
				 errdetail("libcurl error %d: %s", (int) rc,
						   errbuf[0] != '\0' ? errbuf : curl_easy_strerror(rc))));
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
