/*
 * fetch.h
 *		HTTPS GET of an identity provider's documents, through libcurl.
 */
#ifndef JWT_FETCH_H
#define JWT_FETCH_H

#include "datatype/timestamp.h"

/* the largest document we read: a JWKS or a discovery document */
#define JWT_FETCH_MAX_BYTES		(1024 * 1024)

typedef struct JwtFetchResult
{
	bool		ok;				/* a 200 answer, body read in full */
	long		http_status;	/* 0: no answer */
	char	   *body;			/* palloc'd, NUL-terminated; NULL unless ok */
	size_t		len;
	int			max_age;		/* Cache-Control max-age in seconds, 0 when
								 * no-store or no-cache; -1: none */
	TimestampTz expires;		/* Expires by our clock: Expires - Date after
								 * the answer came (or Expires when no Date);
								 * 0: none */
	char		error[256];		/* why not ok: a fixed text, no body, no
								 * address, no secret */
} JwtFetchResult;

/* settings (jwt.c defines them) */
extern char *jwt_jwks_ca_file;
extern int	jwt_jwks_timeout;	/* milliseconds, whole transfer */

extern bool jwt_https_url(const char *url);

/* raises 42501 unless the current user owns the extension or is superuser */
extern void jwt_fetch(const char *url, JwtFetchResult *res);

#endif							/* JWT_FETCH_H */
