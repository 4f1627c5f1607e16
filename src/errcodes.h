/*
 * errcodes.h
 *		The extension's SQLSTATEs: class JW, one code per kind of token failure
 *		(DESIGN §6).  Callers catch one kind, or the whole class.
 */
#ifndef JWT_ERRCODES_H
#define JWT_ERRCODES_H

#include "postgres.h"

#define ERRCODE_JWT_DECODE			MAKE_SQLSTATE('J','W','0','0','1')
#define ERRCODE_JWT_SIGNATURE		MAKE_SQLSTATE('J','W','0','0','2')
#define ERRCODE_JWT_ALGORITHM		MAKE_SQLSTATE('J','W','0','0','3')
#define ERRCODE_JWT_EXPIRED			MAKE_SQLSTATE('J','W','0','0','4')
#define ERRCODE_JWT_IMMATURE		MAKE_SQLSTATE('J','W','0','0','5')
#define ERRCODE_JWT_AUDIENCE		MAKE_SQLSTATE('J','W','0','0','6')
#define ERRCODE_JWT_ISSUER			MAKE_SQLSTATE('J','W','0','0','7')
#define ERRCODE_JWT_MISSING_CLAIM	MAKE_SQLSTATE('J','W','0','0','8')
#define ERRCODE_JWT_KEY				MAKE_SQLSTATE('J','W','0','0','9')
/* reserved for revocation, which a later version adds */
#define ERRCODE_JWT_REVOKED			MAKE_SQLSTATE('J','W','0','1','0')

#endif							/* JWT_ERRCODES_H */
