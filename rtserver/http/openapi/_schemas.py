"""The schemas of the OpenAPI description: bodies as the server writes and reads them.

Each schema mirrors one function that renders a body (named in its description), so a
change there has one place to go here; the tests validate every response the suite
receives against these, which is what keeps the two in step. Objects are closed
(``additionalProperties: false``): a field the server adds without describing it fails
those tests.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
INTEGER: Schema = {"type": "integer"}
BOOLEAN: Schema = {"type": "boolean"}
NULLABLE_STRING: Schema = {"type": ["string", "null"]}
NULLABLE_INTEGER: Schema = {"type": ["integer", "null"]}
#: A base-unit amount, gas, fee or nonce: a decimal string (2**256 has 78 digits).
DECIMAL: Schema = {"type": ["string", "null"], "pattern": "^[0-9]{1,78}$"}
#: A hex string or nothing (``""``), as the camelCase namings write an absent value.
TEXT_OR_EMPTY: Schema = {"type": "string"}
ANY_JSON: Schema = {}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def array(items: Schema, **extra: Any) -> Schema:
    return {"type": "array", "items": items, **extra}


def nullable(schema: Schema) -> Schema:
    return {"oneOf": [schema, {"type": "null"}]}


def closed(
    required: dict[str, Schema],
    optional: dict[str, Schema] | None = None,
    description: str | None = None,
) -> Schema:
    """An object with exactly these properties (``required`` always present)."""
    schema: Schema = {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }
    if description:
        schema["description"] = description
    return schema


def _strings(*names: str) -> dict[str, Schema]:
    return dict.fromkeys(names, NULLABLE_STRING)


# -- error shapes: one per API (rtserver/http/_errors.py and the protocols') ------------

ERRORS: dict[str, Schema] = {
    "Error": closed(
        {
            "error": closed(
                {"status": INTEGER, "message": STRING, "request_id": STRING},
            )
        },
        description="rtserver's own error shape (admin API, operations, documentation): "
        "`rtserver.http._errors.default_shape`. `request_id` is also the `X-Request-Id` header.",
    ),
    "AddressMonitoringError": closed(
        {
            "code": {"type": "integer", "description": "The HTTP status."},
            "message": STRING,
            "msg": {"type": "string", "description": "The same text as `message`."},
            "data": {"type": "null"},
            "request_id": STRING,
        },
        description="Errors of `/tx/api/v1` (`address_monitoring/_errors.py`): the status in "
        "`code`, the text under both names the success envelopes use. A refused WebSocket "
        "handshake has an empty `request_id`.",
    ),
    "PaymentError": closed(
        {"type": {"const": "error"}, "message": STRING},
        description="Errors of `/api/identipay/v1` and of the status socket's handshake: "
        "the document's `error` message (`payment_status/_wire.py`).",
    ),
    "ChannelError": closed(
        {
            "status_code": INTEGER,
            "message": STRING,
            "trace_id": STRING,
            "data": {"type": "null"},
        },
        description="Errors of `/api/v1/ws` (`channels/_wire.py`): the document's JSON error.",
    ),
    "WalletError": closed(
        {"statusCode": INTEGER, "message": STRING},
        description="Errors of `/v1.2` and of the wallet socket's handshake "
        "(`wallet/ws.py`, a NestJS-style body).",
    ),
}

# -- address monitoring ----------------------------------------------------------------


def _am_envelope(data: Schema, text: str, code: int, description: str) -> Schema:
    properties: dict[str, Schema] = {
        "code": {"const": code},
        text: {"const": "ok" if text == "message" else "success"},
        "data": data,
    }
    return closed(properties, description=description)


_SNAKE_TOKEN = closed(
    {
        "from_address": NULLABLE_STRING,
        "to_address": NULLABLE_STRING,
        "token_contract_address": NULLABLE_STRING,
        "symbol": NULLABLE_STRING,
        "amount": DECIMAL,
        "decimals": NULLABLE_INTEGER,
        "is_from_contract": BOOLEAN,
        "is_to_contract": BOOLEAN,
        "from_token_address": NULLABLE_STRING,
        "to_token_address": NULLABLE_STRING,
        "mint": NULLABLE_STRING,
        "program_id": NULLABLE_STRING,
    }
)
_SNAKE_INTERNAL = closed(
    {
        "from_address": NULLABLE_STRING,
        "to_address": NULLABLE_STRING,
        "amount": DECIMAL,
        "tx_status": NULLABLE_STRING,
        "program_id": NULLABLE_STRING,
        "instr_index": NULLABLE_INTEGER,
        "depth": NULLABLE_INTEGER,
        "instruction": NULLABLE_STRING,
        "description": NULLABLE_STRING,
    }
)
_SNAKE_INPUT = closed(
    {
        "address": NULLABLE_STRING,
        "amount": DECIMAL,
        "is_contract": BOOLEAN,
        "vin_index": NULLABLE_STRING,
        "pre_vout_index": NULLABLE_STRING,
        "ref_tx_hash": NULLABLE_STRING,
    }
)
_SNAKE_OUTPUT = closed(
    {
        "address": NULLABLE_STRING,
        "amount": DECIMAL,
        "is_contract": BOOLEAN,
        "vout_index": NULLABLE_STRING,
    }
)
#: A token transfer in the webhooks' ``TransactionResult``: only these eight fields.
_RESULT_TOKEN_FIELDS: dict[str, Schema] = {
    "from": NULLABLE_STRING,
    "to": NULLABLE_STRING,
    "isFromContract": BOOLEAN,
    "isToContract": BOOLEAN,
    "tokenContractAddress": NULLABLE_STRING,
    "symbol": NULLABLE_STRING,
    "amount": DECIMAL,
    "decimals": NULLABLE_INTEGER,
}
_CAMEL_TOKEN = closed(
    {
        **_RESULT_TOKEN_FIELDS,
        "fromTokenAddress": TEXT_OR_EMPTY,
        "toTokenAddress": TEXT_OR_EMPTY,
        "mint": TEXT_OR_EMPTY,
        "programId": TEXT_OR_EMPTY,
    }
)
_CAMEL_INTERNAL = closed(
    {
        "from": NULLABLE_STRING,
        "to": NULLABLE_STRING,
        "amount": DECIMAL,
        "txStatus": NULLABLE_STRING,
        "programId": NULLABLE_STRING,
        "instrIndex": NULLABLE_INTEGER,
        "depth": NULLABLE_INTEGER,
        "instruction": NULLABLE_STRING,
        "description": NULLABLE_STRING,
    }
)
_CAMEL_INPUT = closed(
    {
        "address": NULLABLE_STRING,
        "amount": DECIMAL,
        "isContract": BOOLEAN,
        "vinIndex": NULLABLE_STRING,
        "preVoutIndex": NULLABLE_STRING,
        "refTxHash": NULLABLE_STRING,
    }
)
_CAMEL_OUTPUT = closed(
    {
        "address": NULLABLE_STRING,
        "amount": DECIMAL,
        "isContract": BOOLEAN,
        "voutIndex": NULLABLE_STRING,
    }
)

#: The fields the V2 detail and ``TransactionResult`` name alike.
_CAMEL_COMMON: dict[str, Schema] = {
    "gasLimit": DECIMAL,
    "gasUsed": DECIMAL,
    "gasPrice": DECIMAL,
    "txFee": DECIMAL,
    "nonce": DECIMAL,
    "symbol": NULLABLE_STRING,
    "decimals": NULLABLE_INTEGER,
    "amount": DECIMAL,
    "txStatus": {"enum": ["success", "failed", "pending", None]},
    "methodId": TEXT_OR_EMPTY,
    "methodCall": TEXT_OR_EMPTY,
    "fromDetails": array(_CAMEL_INPUT),
    "toDetails": array(_CAMEL_OUTPUT),
    "internalTransactionDetails": array(_CAMEL_INTERNAL),
}

_REMOVED = {"removed": {"const": True, "description": "Only on a record a reorg removed."}}

ADDRESS_MONITORING: dict[str, Schema] = {
    "TransactionDetail": closed(
        {
            "id": {
                "type": "integer",
                "description": "The cursor: pass it as `id` for the next page.",
            },
            "chain_type": STRING,
            "chain_id": INTEGER,
            "tx_hash": STRING,
            "height": NULLABLE_INTEGER,
            "tx_time": {"type": ["integer", "null"], "description": "Unix seconds."},
            "tx_version": NULLABLE_INTEGER,
            **_strings("sender", "fee_payer", "receiver", "transfer_type"),
            "amount": DECIMAL,
            "symbol": NULLABLE_STRING,
            "decimals": NULLABLE_INTEGER,
            "tx_status": {"enum": ["success", "failed", "pending", None]},
            "tx_fee": DECIMAL,
            "gas_limit": DECIMAL,
            "gas_used": DECIMAL,
            "gas_price": DECIMAL,
            "max_fee_per_gas": DECIMAL,
            "max_priority_fee_per_gas": DECIMAL,
            "nonce": DECIMAL,
            **_strings("method_id", "method_call", "l1_origin_hash"),
            "token_transfers": array(_SNAKE_TOKEN),
            "from_details": array(_SNAKE_INPUT),
            "to_details": array(_SNAKE_OUTPUT),
            "internal_transactions": array(_SNAKE_INTERNAL),
        },
        _REMOVED,
        description="`TransactionDetail` (snake_case, seconds) of the list endpoints: "
        "`address_monitoring._naming.transaction_detail`.",
    ),
    "TransactionDetailV2": closed(
        {
            "chain_type": STRING,
            "chain_id": INTEGER,
            "height": NULLABLE_INTEGER,
            "txTime": {"type": ["integer", "null"], "description": "Unix milliseconds."},
            "txhash": STRING,
            **_strings("sender", "fee_payer", "receiver", "transfer_type"),
            **_CAMEL_COMMON,
            "max_fee_per_gas": DECIMAL,
            "max_priority_fee_per_gas": DECIMAL,
            "l1OriginHash": TEXT_OR_EMPTY,
            "tokenTransferDetails": array(_CAMEL_TOKEN),
            "listenAddress": {
                "type": "null",
                "description": "A detail answers a query, not a watch.",
            },
            "is_reorg_resend": {"const": False},
        },
        description="The V2 naming of `GET /transfers/detail` (mixed case, `txTime` in ms): "
        "`address_monitoring._naming.v2_detail`. The WebSocket push's `data` is the same "
        "naming (docs/address-monitoring.md).",
    ),
    "PushData": {
        "type": "object",
        "description": "The `data` of a WebSocket `transaction` push "
        "(`address_monitoring._naming.push_data`), as `POST /transaction/ws/replay` reads it "
        "back: `chain_type`, `chain_id` and `txhash` are required, every other field of "
        "`TransactionDetailV2` is optional and validated like the API's other inputs.",
        "required": ["chain_type", "chain_id", "txhash"],
        "properties": {
            "chain_type": STRING,
            "chain_id": INTEGER,
            "txhash": STRING,
            "height": NULLABLE_INTEGER,
            "txTime": {"type": ["integer", "null"], "description": "Unix milliseconds."},
            "listenAddress": {"type": ["array", "null"], "items": STRING},
            "is_reorg_resend": BOOLEAN,
            "removed": BOOLEAN,
        },
    },
    "Pool": closed(
        {
            "chain_type": STRING,
            "chain_id": INTEGER,
            "address": STRING,
            "enabled": BOOLEAN,
            "created_at": {"type": "integer", "description": "Unix seconds."},
        },
        description="A DEX pool rtserver keeps recent trades of (`store.pools.Pool`).",
    ),
    "PoolTrade": closed(
        {
            "chainType": STRING,
            "chainId": INTEGER,
            "height": NULLABLE_INTEGER,
            "txTime": {"type": ["integer", "null"], "description": "Unix seconds."},
            "txHash": STRING,
            "sender": NULLABLE_STRING,
            "feePayer": NULLABLE_STRING,
            "receiver": {
                "type": ["string", "null"],
                "description": "For a token transfer, the token's recipient.",
            },
            "transferType": {"type": ["string", "null"], "examples": ["Token"]},
            **_CAMEL_COMMON,
            "maxFeePerGas": TEXT_OR_EMPTY,
            "maxPriorityFeePerGas": TEXT_OR_EMPTY,
            "tokenTransferDetails": array(closed(_RESULT_TOKEN_FIELDS)),
        },
        {"txVersion": INTEGER, "l1OriginHash": STRING, **_REMOVED},
        description="A pool's recent trade: the webhooks' `TransactionResult` (camelCase, "
        "seconds) as the spec's pool example shows it (`address_monitoring._naming.pool_item`).",
    ),
    "WalletGroups": closed(
        {
            "wallets": array(
                closed(
                    {
                        "chain_type": {"type": "string", "examples": ["ethereum"]},
                        "address": array(STRING, minItems=1),
                    }
                ),
                minItems=1,
            )
        },
        description="Addresses per chain type; at most `api.max_addresses_per_request` in all.",
    ),
}


def am_ok(data: Schema) -> Schema:
    """The envelope of address management, pools and the WebSocket helpers
    (`_envelopes.ok`)."""
    return _am_envelope(data, "message", 0, '`{code: 0, message: "ok", data}`')


def am_list(data: Schema) -> Schema:
    """The envelope of `/transfers/query`, `/multi-chain` and `/details`."""
    return _am_envelope(data, "msg", 1, '`{code: 1, msg: "success", data}`')


def am_detail(data: Schema) -> Schema:
    """The envelope of `GET /transfers/detail`."""
    return _am_envelope(data, "msg", 0, '`{code: 0, msg: "success", data}`')


# -- admin -----------------------------------------------------------------------------

_APP = closed(
    {
        "app_id": STRING,
        "name": STRING,
        "key_prefix": {"type": "string", "description": "The first characters of its API key."},
        "webhook_url": NULLABLE_STRING,
        "created_at": {"type": "integer", "description": "Unix seconds."},
        "revoked_at": {"type": ["integer", "null"], "description": "Unix seconds."},
        "active": BOOLEAN,
    },
    description="An app (tenant): `store.apps.App.to_json`.",
)

ADMIN: dict[str, Schema] = {
    "App": _APP,
    "NewApp": closed(
        {
            "app_id": STRING,
            "api_key": {"type": "string", "description": "Shown this once; rtserver keeps a hash."},
            "app": ref("App"),
        },
        {"webhook_secret": {"type": "string", "description": "With a `webhook_url`: shown once."}},
        description="A created app: `store.apps.NewApp.to_json`.",
    ),
    "Usage": closed(
        {
            "app_id": STRING,
            "days": array(
                closed(
                    {
                        "day": {"type": "string", "format": "date"},
                        "requests": INTEGER,
                        "ws_messages": INTEGER,
                        "webhook_items": INTEGER,
                    }
                )
            ),
        },
        description="Requests and pushed messages per UTC day, newest first (`usage.usage_for_app`).",
    ),
    "WebhookSettings": closed(
        {
            "app_id": STRING,
            "webhook_url": NULLABLE_STRING,
            "enabled": BOOLEAN,
            "disabled_at": {"type": ["integer", "null"], "description": "Unix seconds."},
            "disabled_reason": NULLABLE_STRING,
        },
        {
            "webhook_secret": {
                "type": "string",
                "description": "Only right after creation or rotation.",
            }
        },
        description="An app's webhook endpoint: `store.webhooks.WebhookSettings.to_json`.",
    ),
    "DeadLetters": closed(
        {
            "app_id": STRING,
            "dead_letters": array(
                closed(
                    {
                        "delivery_id": STRING,
                        "item_count": INTEGER,
                        "attempts": INTEGER,
                        "last_status": NULLABLE_INTEGER,
                        "last_error": NULLABLE_STRING,
                        "created_at_ms": INTEGER,
                        "failed_at_ms": INTEGER,
                        "body": {
                            "type": "string",
                            "description": "The webhook body as it was sent.",
                        },
                    }
                )
            ),
        },
        description="Deliveries that ran out of attempts, oldest first, at most 100.",
    ),
    "Requeued": closed({"app_id": STRING, "requeued": INTEGER}),
    "IssuedToken": closed(
        {
            "token": {"type": "string", "description": "Shown this once."},
            "app_id": STRING,
            "user_id": STRING,
            "expires_at": {"type": ["integer", "number"], "description": "Unix seconds."},
        },
        description="An end user's access token for the channel socket (`store.users.IssuedToken`).",
    ),
    "RevokedTokens": closed({"app_id": STRING, "user_id": STRING, "revoked": INTEGER}),
}

# -- payment status --------------------------------------------------------------------

_STATUS = {"enum": ["pending", "settled", "expired", "cancelled"]}
_TIME = {"type": "string", "format": "date-time", "examples": ["2025-01-31T12:00:00.000Z"]}

PAYMENTS: dict[str, Schema] = {
    "ProposalRequest": closed(
        {
            "chainType": {"type": "string", "examples": ["anvil"]},
            "chainId": {"type": "integer", "minimum": 1},
            "token": {
                "type": "string",
                "description": "An ERC-20 contract address, or `native`.",
                "examples": ["native"],
            },
            "amount": {
                "oneOf": [{"type": "string", "pattern": "^[0-9]{1,78}$"}, {"type": "integer"}],
                "description": "Base units, 1 to 2**256-1 (a string of digits).",
            },
            "receivingAddress": STRING,
        },
        {
            "amountMatch": {"enum": ["exact", "atLeast"], "default": "exact"},
            "expiresIn": {"type": "integer", "minimum": 1, "description": "Seconds from now."},
            "expiresAt": {"type": "string", "description": "RFC 3339 with a time zone."},
        },
        description="Exactly one of `expiresIn` and `expiresAt`, within `payments.max_expiry`; "
        "the chain must be one the server follows. Unknown fields are refused.",
    ),
    "Proposal": closed(
        {
            "transactionId": {"type": "string", "format": "uuid"},
            "status": _STATUS,
            "suiTxDigest": {
                "type": ["string", "null"],
                "description": "The hash of the settling transaction (the document's name).",
            },
            "chainType": STRING,
            "chainId": INTEGER,
            "token": STRING,
            "amount": {"type": "string", "pattern": "^[0-9]+$"},
            "amountMatch": {"enum": ["exact", "atLeast"]},
            "receivingAddress": STRING,
            "expiresAt": _TIME,
            "createdAt": _TIME,
            "updatedAt": _TIME,
        },
        description="A proposal as its merchant reads it (`payment_status._wire.proposal_json`).",
    ),
    "PaymentStatus": closed(
        {
            "type": {"const": "status"},
            "transactionId": {"type": "string", "format": "uuid"},
            "status": _STATUS,
            "suiTxDigest": NULLABLE_STRING,
        },
        description="The `status` message (`payment_status._wire.status_message`).",
    ),
}

# -- channels --------------------------------------------------------------------------


def channel_success(data: Schema) -> Schema:
    """The document's JSON shape for a successful answer (`channels._wire.success_body`)."""
    return closed(
        {"status_code": INTEGER, "message": STRING, "trace_id": STRING, "data": data},
    )


CHANNELS: dict[str, Schema] = {
    "PublishRequest": {
        "type": "object",
        "required": ["channel", "event", "data"],
        "properties": {
            "channel": {"type": "string", "examples": ["settings"]},
            "event": {"type": "string", "minLength": 1},
            "data": {"description": "The event's payload: any JSON value."},
            "user_id": {
                "type": ["string", "integer"],
                "description": "A per-user channel's one user.",
            },
            "user_ids": array({"type": ["string", "integer"]}),
            "app_id": {"type": "string", "description": "Required with the admin token."},
        },
        "description": "A per-user channel takes `user_id` or `user_ids` (at most "
        "`channels.max_users_per_publish`); a broadcast channel takes neither.",
    },
    "Published": closed(
        {
            "channel": STRING,
            "published": array(
                closed({"user_id": NULLABLE_STRING, "offset": INTEGER, "epoch": STRING})
            ),
        },
        description="Where each event landed in its channel's history (offset, epoch).",
    ),
    "ConnectedUsers": closed({"user_ids": array(STRING), "count": INTEGER}),
    "ChannelConnections": closed(
        {
            "connections": array(
                closed(
                    {
                        "connection_id": STRING,
                        "app_id": STRING,
                        "user_id": STRING,
                        "connected_at": {"type": "integer", "description": "Unix seconds."},
                        "channels": array(STRING),
                    }
                )
            ),
            "count": INTEGER,
        }
    ),
}

# -- wallet ----------------------------------------------------------------------------

_IBAN = closed({"iban": NULLABLE_STRING, "bic": NULLABLE_STRING, "state": NULLABLE_STRING})
_RECOVERY = closed(
    {
        "enabled": BOOLEAN,
        "address": NULLABLE_STRING,
        "delay": NULLABLE_INTEGER,
        "pending": BOOLEAN,
        "execute_after_ms": NULLABLE_INTEGER,
    }
)

WALLET: dict[str, Schema] = {
    "UserData": closed(
        {
            "id": STRING,
            "ky": {
                "type": ["string", "null"],
                "description": "The KYC state (the document's name).",
            },
            "signers": array(
                closed(
                    {
                        "id": STRING,
                        "safes": array(
                            closed(
                                {
                                    "address": STRING,
                                    "threshold": INTEGER,
                                    "iban": nullable(
                                        closed(
                                            {
                                                "chainId": INTEGER,
                                                "iban": STRING,
                                                "bic": NULLABLE_STRING,
                                                "state": NULLABLE_STRING,
                                            }
                                        )
                                    ),
                                }
                            )
                        ),
                    }
                )
            ),
        },
        description="The data of the socket's `user_data` message (`wallet._wire.user_data`).",
    ),
    "BalanceData": closed(
        {
            "safeAddress": STRING,
            "balance": closed(
                {
                    "balances": array(
                        closed(
                            {
                                "token": {
                                    "type": "string",
                                    "description": "EIP-55; the zero address for the native coin.",
                                },
                                "symbol": STRING,
                                "balance": {"type": "string", "examples": ["123.45"]},
                                "decimals": INTEGER,
                            }
                        )
                    )
                }
            ),
        },
        description="The data of `balance_data` (`wallet._wire.balance_data`): human amounts.",
    ),
    "TransactionData": closed(
        {
            "safeAddress": STRING,
            "transactions": closed(
                {
                    "data": array(
                        closed(
                            {
                                "hash": STRING,
                                "blockNumber": NULLABLE_INTEGER,
                                "timestamp": NULLABLE_STRING,
                                "from": NULLABLE_STRING,
                                "to": NULLABLE_STRING,
                                "tokenAddress": NULLABLE_STRING,
                                "tokenType": {"enum": ["NATIVE", "ERC20"]},
                                "tokenSymbol": STRING,
                                "value": STRING,
                                "direction": {"enum": ["IN", "OUT"]},
                            }
                        )
                    )
                }
            ),
        },
        description="The data of `transaction_data` (`wallet._wire.transaction_data`), newest first.",
    ),
    "RegistryUser": closed(
        {
            "app_id": STRING,
            "user_id": STRING,
            "kyc_state": NULLABLE_STRING,
            "safes": array(ref("Safe")),
        },
        description="A user as the registry stores it (`wallet.api.registry_json`).",
    ),
    "Safe": closed(
        {
            "chain_id": INTEGER,
            "chain_type": STRING,
            "address": STRING,
            "signer_id": STRING,
            "threshold": INTEGER,
            "iban": _IBAN,
            "recovery": _RECOVERY,
        },
        description="A user's Safe on one chain (`wallet.api.safe_json`).",
    ),
    "SafeRequest": closed(
        {"address": {"type": "string", "description": "The Safe's EVM address."}},
        {
            "signer_id": {"type": "string", "description": "Default: the address."},
            "threshold": {"type": "integer", "minimum": 1, "default": 1},
        },
    ),
    "KycRequest": closed({"state": {"type": "string", "examples": ["verified"]}}),
    "KycChange": closed({"previous_state": NULLABLE_STRING, "new_state": STRING}),
    "IbanRequest": closed(
        {"iban": STRING, "state": {"type": "string", "examples": ["active"]}},
        {"bic": NULLABLE_STRING},
    ),
    "IbanChange": closed({"previous_state": NULLABLE_STRING, "safe": ref("Safe")}),
    "RecoveryRequest": closed(
        {},
        {
            "enabled": BOOLEAN,
            "address": NULLABLE_STRING,
            "delay": {"type": ["integer", "null"], "minimum": 0, "description": "Seconds."},
            "pending": BOOLEAN,
            "execute_after": {
                "type": ["string", "integer", "null"],
                "description": "ISO 8601, or Unix milliseconds.",
            },
        },
    ),
}

# -- operations ------------------------------------------------------------------------

_COUNTS = {"type": "object", "additionalProperties": INTEGER}
_RATES = {"type": "object", "additionalProperties": {"type": "number"}}
_NULLABLE_BLOCK = NULLABLE_INTEGER

OPERATIONS: dict[str, Schema] = {
    # Mirrors rtserver.dashboard.Dashboard.snapshot.
    "DashboardSnapshot": closed(
        {
            "time": {"type": "number", "description": "Unix seconds."},
            "uptime": {"type": "number", "description": "Seconds since the server started."},
            "chains": array(
                closed(
                    {
                        "chain": STRING,
                        "chain_type": STRING,
                        "chain_id": INTEGER,
                        "head": _NULLABLE_BLOCK,
                        "processed": _NULLABLE_BLOCK,
                        "lag": _NULLABLE_BLOCK,
                        "rpc_errors": INTEGER,
                    }
                )
            ),
            "connections": {**_COUNTS, "description": "Open connections per endpoint."},
            "connections_total": INTEGER,
            "messages_sent": {**_COUNTS, "description": "WebSocket messages sent per endpoint."},
            "messages_per_second": {**_RATES, "description": "Since the previous reading."},
            "messages_per_second_total": {"type": "number"},
            "apps": array(
                closed(
                    {
                        "app_id": STRING,
                        "pending_messages": INTEGER,
                        "webhooks": closed(
                            {"queued": INTEGER, "pending": INTEGER, "dead": INTEGER}
                        ),
                    }
                )
            ),
            "recent_events": array(
                closed(
                    {
                        "seen_at": {"type": "number"},
                        "chain": STRING,
                        "tx_hash": STRING,
                        "height": INTEGER,
                        "from": NULLABLE_STRING,
                        "to": NULLABLE_STRING,
                        "amount": NULLABLE_STRING,
                        "symbol": NULLABLE_STRING,
                        "decimals": NULLABLE_INTEGER,
                        "matched_for": array(STRING),
                    }
                ),
                description="Newest first, at most `dashboard.recent_events`.",
            ),
            "viewers": {**INTEGER, "description": "Open dashboard streams."},
        }
    ),
    # Mirrors rtserver.demo._session (rtserver dev only).
    "DemoSession": closed(
        {
            "app_id": STRING,
            "api_key": STRING,
            "chain_type": STRING,
            "chain_id": INTEGER,
            "address": STRING,
            "sender": STRING,
            "transfer_wei": STRING,
            "user_id": STRING,
            "wallet_jwt": NULLABLE_STRING,
            "channel_token": STRING,
        }
    ),
    "DemoTransfer": closed({"tx_hash": STRING, "from": STRING, "to": STRING, "value": STRING}),
    "Health": closed({"status": {"const": "ok"}}),
    "Readiness": closed(
        {
            "status": {"enum": ["ready", "unavailable"]},
            "checks": {
                "type": "object",
                "additionalProperties": STRING,
                "description": "Each check's `ok`, or why it fails.",
            },
        }
    ),
}


def all_schemas() -> dict[str, Schema]:
    return {**ERRORS, **ADDRESS_MONITORING, **ADMIN, **PAYMENTS, **CHANNELS, **WALLET, **OPERATIONS}
