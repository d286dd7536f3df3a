from __future__ import annotations

import pytest

from campaign_factory import well_trained_cu_potential


@pytest.fixture(scope="session")
def cu_ace_well_trained(tmp_path_factory):
    """The well-trained Cu ACE of campaign_factory (shared with the report/package tests)."""
    return well_trained_cu_potential(tmp_path_factory.getbasetemp() / "cu_ace_well_trained")
