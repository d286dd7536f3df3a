"""The record of one tool's image as a campaign used it (state.json, release manifest)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ImageRecord(BaseModel):
    """One tool's image as a campaign used it (state.json ``images``; release manifest)."""

    tool: str
    reference: str = Field(description="as the site YAML named it (path or registry ref)")
    digest: str | None = Field(None, description="sha256 manifest digest; None: local path")
    versions: dict[str, str] = Field(default_factory=dict)

    def differences(self, other: ImageRecord) -> list[str]:
        lines = []
        if self.digest != other.digest:
            lines.append(f"{self.tool}: image {self.digest or self.reference} -> "
                         f"{other.digest or other.reference}")
        for program in sorted(set(self.versions) | set(other.versions)):
            old, new = self.versions.get(program), other.versions.get(program)
            if old != new:
                lines.append(f"{self.tool}: {program} version {old} -> {new}")
        return lines
