//! The two requests tenure sends rather than answers: a Security Event
//! Token pushed to a feed receiver (RFC 8935) and a logout token sent to a
//! client's `backchannel_logout_uri` (OIDC Back-Channel Logout 1.0). They are
//! OpenAPI 3.1 `webhooks`, which utoipa's document type has no field for, so
//! they are written here as the document's JSON and added at the root.

use serde_json::{Value, json};

/// The `webhooks` member of the document.
pub fn webhooks() -> Value {
    json!({
        "ssfPush": {
            "post": {
                "tags": ["feed"],
                "operationId": "ssfPush",
                "summary": "A Security Event Token pushed to a receiver (RFC 8935)",
                "description": "What tenure POSTs to the `endpoint_url` of an enabled push stream: one SET per \
                    request, in queue order, with the stream's `authorization_header` (if any) as `Authorization`. \
                    2xx (202 per RFC 8935) is success. 400 (with `{\"err\", \"description\"}`) means the receiver \
                    refuses that SET: it is dropped. Anything else, no answer within 5 s or a connection error is \
                    retried after 5 s, then 10 s, 20 s, ... (capped at 2560 s), the stream's later SETs waiting \
                    behind it; queued SETs survive restarts and are dropped once older than the longest \
                    access-token lifetime. At least once: a repeat carries the same `jti`.",
                "security": [],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/secevent+jwt": {
                            "schema": {
                                "type": "string",
                                "description": "A SET: compact JWS, header `typ: secevent+jwt`, `alg: RS256`."
                            }
                        }
                    }
                },
                "responses": {
                    "202": { "description": "Accepted (success)." },
                    "400": { "description": "The receiver refuses this SET; it is not sent again." },
                    "default": { "description": "Any other answer is a failed attempt, retried later." }
                }
            }
        },
        "backchannelLogout": {
            "post": {
                "tags": ["logout"],
                "operationId": "backchannelLogout",
                "summary": "Back-channel logout token sent to a client (OIDC Back-Channel Logout 1.0)",
                "description": "What tenure POSTs to a client's `backchannel_logout_uri` (the value configured at \
                    delivery time) when a session in which the client has a family ends (logout, the account or \
                    admin API, every session of a user), or when the client's family dies (`/revoke`, \
                    refresh-token reuse, authorization-code replay). Deliveries are queued in a durable outbox \
                    before the revocation answers, survive restarts, and are delivered at least once: a client \
                    should treat a second logout of a session it already ended as a no-op (match on `sid`; each \
                    attempt has a fresh `jti`).\n\nA failed attempt (a status other than 200 or 204, a redirect, \
                    no answer within 5 s, a connection error) is retried after 15 s × 2^(n-1) (15 s, 30 s, 60 s, \
                    ... capped at 1920 s) and given up after 50 attempts. A client with no \
                    `backchannel_logout_uri` at delivery time is sent nothing.",
                "security": [],
                "requestBody": {
                    "required": true,
                    "content": {
                        "application/x-www-form-urlencoded": {
                            "schema": {
                                "type": "object",
                                "required": ["logout_token"],
                                "additionalProperties": false,
                                "properties": {
                                    "logout_token": {
                                        "type": "string",
                                        "description": "A JWT (header `typ: logout+jwt`, `alg` and `kid` of a key \
                                            in `/jwks.json`) whose payload is `LogoutClaims`."
                                    }
                                }
                            }
                        }
                    }
                },
                "responses": {
                    "200": { "description": "Logged out (success)." },
                    "204": { "description": "Logged out (success)." },
                    "default": { "description": "Any other answer is a failed attempt, retried later." }
                }
            }
        }
    })
}
