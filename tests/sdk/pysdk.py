"""Drive the official mParticle Python SDK (PyPI ``mparticle`` 0.16.1) against an opencdp server.

Usage (from a test)::

    import pysdk                       # tests/sdk on sys.path (see docs/sdk-clients.md)
    pysdk.reset_retry_after()          # between tests: clear the SDK's process-wide 429 back-off
    res = pysdk.send_batch("http://127.0.0.1:8080", KEY, SECRET, pysdk.sample_batch())
    assert res.status == 202, res
    res = pysdk.send_bulk(base, KEY, SECRET, [pysdk.sample_batch(), pysdk.build_batch({...})])

Everything goes through the SDK's own ``EventsApi`` / ``ApiClient`` / ``RESTClientObject`` code; the
helper only sets ``configuration.host = base + "/v2"`` and credentials, and catches what the SDK raises.

Verified facts about 0.16.1 (read from site-packages/mparticle, checked on loopback):

* ``Configuration().host`` defaults to ``https://s2s.mparticle.com/v2``; the ``ApiClient`` copies
  ``host`` when it is created (``EventsApi(config)`` creates it and caches it on ``config.api_client``),
  so ``host`` must be set *before* ``EventsApi(config)``.
* ``EventsApi.__init__(self, config=Configuration())``: the default argument is ONE shared
  ``Configuration`` for every ``EventsApi()`` built without an argument. Always pass a config.
* Headers: ``Content-Type: application/json``, ``Accept: application/json``,
  ``User-Agent: mParticle Python client/0.16.0`` (sic), ``Authorization: Basic base64(key:secret)``
  (omitted when key and secret are both empty), ``Accept-Encoding: identity`` (urllib3).
* Body: ``json.dumps`` of the models; ``None`` attributes are dropped. Events are wrapped by the
  ``Batch.events`` *setter* as ``{"data": {...}, "event_type": "..."}``. ``Batch(events=[...])`` in the
  constructor bypasses that wrapping (sends bare event data) -- use the setter.
* User identities: ``UserIdentities`` serialises ``customerid`` (NOT ``customer_id``), ``other``,
  ``other_id_2`` .. ``other_id_10``, ``facebook_custom_audience_id``, ``alias``, ``mobile_number``,
  ``phone_number_2``, ``phone_number_3``, ``email``, ``facebook``, ``twitter``, ``google``, ``microsoft``,
  ``yahoo``.
* ``mpid`` is sent as whatever Python value you set (int -> JSON number, exact for 64-bit).
* ``CrashReportEvent`` is mapped to ``event_type: "commerce_event"`` (Batch._allowed_types bug); its
  data carries ``class_name``, ``severity``, ``message``, ``stack_trace``, ``exception_handled``, ...
* Success = HTTP 200..205 (``range(200, 206)``); anything else raises ``mparticle.rest.ApiException``
  (``status``, ``reason``, ``body``, ``headers``). Transport errors are NOT wrapped: urllib3 retries 3
  times, then raises ``urllib3.exceptions.MaxRetryError`` (only SSL errors become ApiException(0)).
* No timeout is configured by the SDK (urllib3 waits forever); this helper sets one on the pool.
* 429 + ``Retry-After: <int>`` sets CLASS-level ``RESTClientObject.retry_after_timestamp`` /
  ``latest_response``; until that time every request in the process (any client) raises
  ApiException(429) locally without sending, with ``Retry-After`` rewritten to the seconds left.
  A 429 without (or with a non-integer) Retry-After raises but sets no back-off.
  :func:`reset_retry_after` clears the state.
* Every ``Configuration()`` adds a new StreamHandler to the ``mparticle`` and ``urllib3`` loggers
  (duplicate log lines); :func:`make_api` removes the one it caused.
* Client-side validation raises ValueError before anything is sent: ``environment`` must be
  production|development, ``AppEvent`` needs ``event_name`` and a known ``custom_event_type``, custom
  attribute values must be scalars (no lists), ``DeviceInformation`` advertising ids must be UUIDs.
"""

from __future__ import annotations

import calendar
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import mparticle
import urllib3
from mparticle.models.user_attribute_change_event import UserAttributeChangeEvent
from mparticle.rest import ApiException, RESTClientObject

__all__ = [
    "SendResult",
    "batch_payload",
    "build_batch",
    "make_api",
    "reset_retry_after",
    "retry_after_remaining",
    "sample_batch",
    "send_batch",
    "send_bulk",
]

SDK_VERSION = "0.16.1"


@dataclass
class SendResult:
    """Outcome of one SDK call. ``status`` is None when nothing came back (transport error)."""

    call: str  # "upload_events" | "bulk_upload_events"
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # response body (the SDK only exposes it on errors)
    exception: BaseException | None = None
    throttled_locally: bool = False  # SDK refused to send because of an earlier 429 Retry-After
    payload: Any = None  # the JSON document the SDK serialised

    @property
    def ok(self) -> bool:
        return self.exception is None and self.status is not None and 200 <= self.status < 300

    def __str__(self) -> str:
        exc = (
            f"{type(self.exception).__name__}: {self.exception!s}".strip()
            if self.exception
            else None
        )
        return (
            f"SendResult({self.call} status={self.status} ok={self.ok} "
            f"throttled_locally={self.throttled_locally} body={self.body!r} exc={exc!r})"
        )


# --------------------------------------------------------------------------------------------------
# Retry-After state (class attributes of mparticle.rest.RESTClientObject)


def reset_retry_after() -> None:
    """Forget any 429 back-off the SDK recorded (process-wide). Call between tests."""
    RESTClientObject.retry_after_timestamp = calendar.timegm(time.gmtime())
    RESTClientObject.latest_response = None


def retry_after_remaining() -> int:
    """Seconds for which the SDK will refuse to send (0 = not throttled)."""
    if RESTClientObject.latest_response is None:
        return 0
    return max(0, RESTClientObject.retry_after_timestamp - calendar.timegm(time.gmtime()))


# --------------------------------------------------------------------------------------------------
# client


def make_api(
    base_url: str,
    api_key: str,
    api_secret: str,
    *,
    timeout: float | None = 30.0,
    pool_size: int = 1,
) -> mparticle.EventsApi:
    """EventsApi whose host is ``base_url + "/v2"`` (pass ``.../v2`` yourself to skip the suffix)."""
    cfg = mparticle.Configuration()
    # Configuration() attached a fresh StreamHandler to the 'mparticle' and 'urllib3' loggers.
    if cfg.logger_stream_handler is not None:
        for lg in cfg.logger.values():
            lg.removeHandler(cfg.logger_stream_handler)
    # ...and its `debug` setter reset both loggers' levels to WARNING; leave that (SDK behaviour).
    base = base_url.rstrip("/")
    cfg.host = base if base.endswith("/v2") else base + "/v2"
    cfg.api_key = api_key
    cfg.api_secret = api_secret
    cfg.connection_pool_size = pool_size
    api = mparticle.EventsApi(cfg)
    if timeout is not None:
        # The SDK never passes a timeout to urllib3; give the pool one so a hung server fails the test.
        api.api_client.rest_client.pool_manager.connection_pool_kw["timeout"] = urllib3.Timeout(
            total=timeout
        )
    return api


def batch_payload(body: Any) -> Any:
    """The JSON document the SDK puts on the wire for ``body`` (a Batch, a list of them, or dicts)."""
    return json.loads(json.dumps(mparticle.ApiClient.sanitize_for_serialization(body)))


def _call(api: mparticle.EventsApi, call: str, body: Any) -> SendResult:
    payload = batch_payload(body)
    throttled = retry_after_remaining() > 0
    fn = getattr(api, call + "_with_http_info")
    try:
        _data, status, headers = fn(body)
    except ApiException as e:
        return SendResult(
            call,
            e.status,
            dict(e.headers or {}),
            e.body,
            e,
            throttled_locally=throttled,
            payload=payload,
        )
    except Exception as e:  # urllib3 MaxRetryError / timeouts are not wrapped by the SDK
        return SendResult(call, None, {}, None, e, payload=payload)
    return SendResult(call, status, dict(headers or {}), None, None, payload=payload)


def send_batch(
    base_url: str,
    api_key: str,
    api_secret: str,
    batch: mparticle.Batch | Mapping[str, Any],
    *,
    timeout: float | None = 30.0,
) -> SendResult:
    """``EventsApi.upload_events(batch)`` -> ``POST {base}/v2/events``.

    ``batch`` may be an ``mparticle.Batch`` (normal SDK use) or a plain dict, which the SDK's
    serializer passes through unchanged (useful for malformed-input tests).
    """
    return _call(make_api(base_url, api_key, api_secret, timeout=timeout), "upload_events", batch)


def send_bulk(
    base_url: str,
    api_key: str,
    api_secret: str,
    batches: Iterable[mparticle.Batch | Mapping[str, Any]],
    *,
    timeout: float | None = 30.0,
) -> SendResult:
    """``EventsApi.bulk_upload_events([...])`` -> ``POST {base}/v2/bulkevents`` (JSON array).

    Note: an EMPTY list is falsy, so the SDK sends the request with no body at all.
    """
    return _call(
        make_api(base_url, api_key, api_secret, timeout=timeout),
        "bulk_upload_events",
        list(batches),
    )


# --------------------------------------------------------------------------------------------------
# building batches with the SDK's model classes

_EVENT_CLASSES: dict[str, Any] = {
    "custom_event": mparticle.AppEvent,
    "screen_view": mparticle.ScreenViewEvent,
    "commerce_event": mparticle.CommerceEvent,
    "session_start": mparticle.SessionStartEvent,
    "session_end": mparticle.SessionEndEvent,
    "crash_report": mparticle.CrashReportEvent,  # NB: serialised as event_type "commerce_event"
    "opt_out": mparticle.OptOutEvent,
    "first_run": mparticle.FirstRunEvent,
    "application_state_transition": mparticle.ApplicationStateTransitionEvent,
    "push_registration": mparticle.PushRegistrationEvent,
    "push_message": mparticle.PushMessageEvent,
    "network_performance": mparticle.NetworkPerformanceEvent,
    "breadcrumb": mparticle.BreadcrumbEvent,
    "profile": mparticle.ProfileEvent,
    "user_attribute_change": UserAttributeChangeEvent,  # not exported at package level
}


def _build_event(ev: Mapping[str, Any]) -> Any:
    etype = ev.get("event_type")
    data = dict(ev.get("data") or {})
    cls = _EVENT_CLASSES.get(str(etype))
    if cls is None:
        # no model: raw EventBase, sent exactly as given
        return mparticle.EventBase(data=data, event_type=etype)
    if cls is mparticle.AppEvent:
        model = cls(
            event_name=data.pop("event_name", None),
            custom_event_type=data.pop("custom_event_type", "other"),
        )
    elif cls is mparticle.CommerceEvent:
        pa = data.pop("product_action", None)
        action = None
        if pa is not None:
            pa = dict(pa)
            products = [mparticle.Product(**p) for p in pa.pop("products", None) or []]
            action = mparticle.ProductAction(pa.pop("action"), **pa)
            if products:
                action.products = products
        model = cls(product_action=action)
    else:
        model = cls()
    for k, v in data.items():
        setattr(model, k, v)  # the SDK's setters validate enums / attribute bags / UUIDs
    return model


def build_batch(spec: Mapping[str, Any]) -> mparticle.Batch:
    """Events-API-shaped dict -> ``mparticle.Batch`` built with the SDK's classes and setters.

    ``user_identities`` must use the SDK's key names (``customerid``, ``other_id_2`` ...); unknown keys
    raise TypeError. ``device_info`` / ``application_info`` become SDK models; other fields are set as
    given. ``events``: ``[{"event_type": ..., "data": {...}}]``.
    """
    batch = mparticle.Batch()
    batch.environment = spec.get("environment", "development")
    for k, v in spec.items():
        if k in ("environment", "events"):
            continue
        if k == "user_identities" and isinstance(v, Mapping):
            v = mparticle.UserIdentities(**v)
        elif k == "device_info" and isinstance(v, Mapping):
            v = mparticle.DeviceInformation(**v)
        elif k == "application_info" and isinstance(v, Mapping):
            v = mparticle.ApplicationInformation(**v)
        setattr(batch, k, v)
    batch.events = [_build_event(e) for e in spec.get("events") or []]
    return batch


def sample_batch(
    *,
    customerid: str = "py-sdk-customer-1",
    email: str | None = "py-sdk@example.com",
    mpid: int | None = None,
    environment: str = "development",
) -> mparticle.Batch:
    """A representative batch in the style of the SDK README (identities, attributes, consent,
    session start/end, custom event, screen view, purchase, crash report)."""
    now = int(time.time() * 1000)
    batch = mparticle.Batch()
    batch.environment = environment
    ids = mparticle.UserIdentities()
    ids.customerid = customerid
    if email:
        ids.email = email
    batch.user_identities = ids
    if mpid is not None:
        batch.mpid = mpid
    batch.user_attributes = {"hair color": "brown", "plan": "trial"}
    batch.mp_deviceid = "59780f39-d7a0-4ebe-9950-280f937c29e2"
    device = mparticle.DeviceInformation()
    device.ios_advertising_id = "07d2ebaa-e956-407e-a1e6-f05f871bf4e2"
    batch.device_info = device
    batch.application_info = mparticle.ApplicationInformation(
        application_name="py-harness", application_version="1.0.0"
    )
    consent = mparticle.ConsentState()
    consent.gdpr = {
        "document_agreement": mparticle.GDPRConsentState(
            document="document_agreement.v2",
            consented=True,
            timestamp_unixtime_ms=now,
            location="dtmgbank.com/signup",
            hardware_id="IDFA:a5d934n0",
        )
    }
    consent.ccpa = {
        "data_sale_opt_out": mparticle.CCPAConsentState(
            document="document_agreement.v3",
            consented=True,
            timestamp_unixtime_ms=now,
            location="mparticle.test/signup",
            hardware_id="IDFA:3f90np3n",
        )
    }
    batch.consent_state = consent

    start = mparticle.SessionStartEvent()
    start.session_id = 12345678
    start.timestamp_unixtime_ms = now - 10_000
    app_event = mparticle.AppEvent(event_name="Hello World", custom_event_type="navigation")
    app_event.custom_attributes = {"foo": "bar", "answer": 42}
    app_event.timestamp_unixtime_ms = now - 9_000
    screen = mparticle.ScreenViewEvent()
    screen.screen_name = "Home"
    screen.timestamp_unixtime_ms = now - 8_000
    product = mparticle.Product()
    product.id = "sample-sku"
    product.name = "Example Product"
    product.price = 19.99
    product.quantity = 1
    action = mparticle.ProductAction("purchase")
    action.products = [product]
    action.transaction_id = "txn-py-1"
    action.tax_amount = 1.5
    action.total_amount = 21.49
    commerce = mparticle.CommerceEvent(action)
    commerce.timestamp_unixtime_ms = now - 7_000
    crash = mparticle.CrashReportEvent()
    crash.class_name = "ValueError"
    crash.message = "boom"
    crash.stack_trace = 'File "harness.py", line 1'
    crash.exception_handled = True
    crash.severity = "error"
    crash.timestamp_unixtime_ms = now - 6_000
    end = mparticle.SessionEndEvent()
    end.session_id = 12345678
    end.session_duration_ms = 10_000
    end.timestamp_unixtime_ms = now
    batch.events = [start, app_event, screen, commerce, crash, end]
    return batch


def _drop_sdk_stream_handlers() -> None:
    """Remove the StreamHandlers that ``mparticle.Configuration()`` attached to the 'mparticle' and
    'urllib3' loggers -- including the one from the import-time default argument
    ``EventsApi.__init__(config=Configuration())`` -- so SDK/urllib3 warnings go through normal
    logging propagation (pytest's log capture) instead of being written straight to stderr."""
    for name in ("mparticle", "urllib3"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            fmt = getattr(h.formatter, "_fmt", None)
            if type(h) is logging.StreamHandler and fmt == "%(asctime)s %(levelname)s %(message)s":
                lg.removeHandler(h)


_drop_sdk_stream_handlers()
