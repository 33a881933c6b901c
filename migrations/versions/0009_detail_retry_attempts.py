"""event_problems.attempts: how often later runs asked again for an event's detail

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 21:23:02.795059

An event whose detail answer was unusable is kept as listed with a ``detail_unusable``
problem, and later runs ask again for its detail (``archiver.sync.redetail``). An event whose
detail is gone for good (404 every time) was asked by every run, for ever, and took a share of
each run's budget. This column counts, on the problem row, the answers that were still
unusable; runs stop asking at ``redetail.MAX_ATTEMPTS``. Existing rows start at 0: every
event kept as listed before this revision gets its full number of attempts.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('event_problems', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('event_problems', schema=None) as batch_op:
        batch_op.drop_column('attempts')
