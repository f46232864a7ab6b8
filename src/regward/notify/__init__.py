"""Notifications: events recorded in the store and POSTed to webhooks with an HMAC signature.

`Notifier.publish` records an event with one delivery per configured receiver.
`WebhookDispatcher` delivers them from an asyncio task with retries and exponential backoff,
and keeps a dead letter after the last failed attempt. Settings come from the `notifications`
section of the gate's config file (`load_notification_settings`).
"""

from __future__ import annotations

from regward.notify.config import (
    NotificationSettings,
    WebhookTarget,
    default_webhook_name,
    load_notification_settings,
)
from regward.notify.interface import Event, EventType, FindingSummary, NotifyError
from regward.notify.records import Delivery, DeliveryState, NotificationStore
from regward.notify.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    Notifier,
    WebhookDispatcher,
    encode_body,
    sign_body,
    verify_signature,
)

__all__ = [
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "Delivery",
    "DeliveryState",
    "Event",
    "EventType",
    "FindingSummary",
    "NotificationSettings",
    "NotificationStore",
    "Notifier",
    "NotifyError",
    "WebhookDispatcher",
    "WebhookTarget",
    "default_webhook_name",
    "encode_body",
    "load_notification_settings",
    "sign_body",
    "verify_signature",
]
