"""The store: every repository of the bridge's state on one engine, the one object callers pass around."""

from __future__ import annotations

from bridge.storage.action_repository import ActionRepository
from bridge.storage.deploy_repository import DeployRepository
from bridge.storage.heartbeat_repository import HeartbeatRepository
from bridge.storage.history_pages import HistoryPages
from bridge.storage.incident_repository import IncidentRepository
from bridge.storage.merge_repository import MergeRepository
from bridge.storage.outbox_repository import OutboxRepository
from bridge.storage.outcome_repository import OutcomeRepository
from bridge.storage.payload_repository import PayloadRepository
from bridge.storage.problem_repository import ProblemRepository
from bridge.storage.rate_limit_repository import RateLimitRepository
from bridge.storage.read_models import ReadModels
from bridge.storage.release_repository import ReleaseRepository
from bridge.storage.report_model import ReportModel
from bridge.storage.session_repository import SessionRepository
from bridge.storage.ticket_repository import TicketRepository
from bridge.storage.ticket_sync_repository import TicketSyncRepository
from bridge.storage.window_repository import WindowRepository


class Store(
    IncidentRepository,
    ProblemRepository,
    MergeRepository,
    OutcomeRepository,
    OutboxRepository,
    ReleaseRepository,
    PayloadRepository,
    RateLimitRepository,
    ReadModels,
    HistoryPages,
    ReportModel,
    ActionRepository,
    TicketRepository,
    TicketSyncRepository,
    HeartbeatRepository,
    WindowRepository,
    DeployRepository,
    SessionRepository,
):
    """All reads and writes of the bridge's state, one repository per aggregate on one engine."""
