"""The application core's public face: everything a surface (the Discord cogs, the command line, the web API) may
import. A surface calls :class:`ImagineService` with an :class:`Actor` and presents the plain data it gets back;
it never imports the core's parts (store, scheduler, ledger, worker, engine). ``tests/bot/test_imports.py`` holds
the cogs to this.
"""

from __future__ import annotations

from bot.actors import Actor, MemberRoles
from bot.application.admitted import Admitted, Submitted
from bot.application.api_keys import ApiKeyError, ApiKeyIdentity, ApiKeyRecord, IssuedKey, LocalUser
from bot.application.describe_actions import Description, Suggestion
from bot.application.engine_report import EngineStatus, engine_line, engine_lines, engines_headline
from bot.application.member_actions import JobFiles, JobPlace, MemberOverview
from bot.application.moderator_actions import Account, QueueListing
from bot.application.service import ImagineService, ReceivedImage
from bot.application.telemetry import Histogram, Telemetry, TelemetrySnapshot
from bot.errors import (
    BannedError,
    DuplicateJobError,
    ImagineError,
    InsufficientCreditsError,
    JobNotFoundError,
    LaneNotAllowedError,
    NotModeratorError,
    PromptError,
    QueueLimitError,
    QueuePausedError,
)
from bot.events import EventKind, JobEvent
from bot.jobs import WEB_SOURCE, ImageResult, Job, Kind, Lane, Origin, RenderParams, Status
from bot.requests.custom_ids import TEMPLATE, Action, make_custom_id, parse_custom_id
from bot.requests.describe import DESCRIBE_TEMPLATE, DescribeUnavailableError, make_describe_id, parse_describe_id
from bot.requests.image_prompt_limits import BLEND_DIMENSIONS, MAX_BLEND_IMAGES, MIN_BLEND_IMAGES
from bot.requests.image_prompts import awaited_image_prompts
from bot.requests.model_limits import ModelChoice, model_choice
from bot.requests.moderation import BlockedPromptError, ChannelNotAllowedError, ServerOnlyError
from bot.requests.preferences import Preferences
from bot.requests.preparation import Prepared
from bot.requests.request_options import ImageInput, RequestOptions
from bot.requests.upload_store import StagedUpload
from bot.requests.uploads import MIB, UploadError, UploadLimits, check_byte_size
from bot.running.delivery import Delivery, PostFailure, needs_delivery
from bot.scheduling.reports import QueueSummary, Stats
from engine.protocol import COMPACT_ABOVE_BYTES

__all__ = [
    "BLEND_DIMENSIONS",
    "COMPACT_ABOVE_BYTES",
    "DESCRIBE_TEMPLATE",
    "MAX_BLEND_IMAGES",
    "MIB",
    "MIN_BLEND_IMAGES",
    "TEMPLATE",
    "WEB_SOURCE",
    "Account",
    "Action",
    "Actor",
    "Admitted",
    "ApiKeyError",
    "ApiKeyIdentity",
    "ApiKeyRecord",
    "BannedError",
    "BlockedPromptError",
    "ChannelNotAllowedError",
    "Delivery",
    "DescribeUnavailableError",
    "Description",
    "DuplicateJobError",
    "EngineStatus",
    "EventKind",
    "Histogram",
    "ImageInput",
    "ImageResult",
    "ImagineError",
    "ImagineService",
    "InsufficientCreditsError",
    "IssuedKey",
    "Job",
    "JobEvent",
    "JobFiles",
    "JobNotFoundError",
    "JobPlace",
    "Kind",
    "Lane",
    "LaneNotAllowedError",
    "LocalUser",
    "MemberOverview",
    "MemberRoles",
    "ModelChoice",
    "NotModeratorError",
    "Origin",
    "PostFailure",
    "Preferences",
    "Prepared",
    "PromptError",
    "QueueLimitError",
    "QueueListing",
    "QueuePausedError",
    "QueueSummary",
    "ReceivedImage",
    "RenderParams",
    "RequestOptions",
    "ServerOnlyError",
    "StagedUpload",
    "Stats",
    "Status",
    "Submitted",
    "Suggestion",
    "Telemetry",
    "TelemetrySnapshot",
    "UploadError",
    "UploadLimits",
    "awaited_image_prompts",
    "check_byte_size",
    "engine_line",
    "engine_lines",
    "engines_headline",
    "make_custom_id",
    "make_describe_id",
    "model_choice",
    "needs_delivery",
    "parse_custom_id",
    "parse_describe_id",
]
