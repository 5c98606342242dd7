"""Member commands around /imagine: /settings, /info and the lane switches /fast, /relax, /turbo."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import ImagineError, Lane, Preferences
from cogs.actors import actor_of
from cogs.admin import queue_headline
from cogs.errors import send_error

if TYPE_CHECKING:
    from bot.discord_surface.discord_bot import ImagineBot

ASPECTS = ("1:1", "3:2", "2:3", "4:3", "3:4", "16:9", "9:16", "21:9", "9:21")
STEP_CHOICES = (10, 15, 20, 25, 30, 40, 50, 60)
DEFAULT = "default"
LANE_HELP = {
    Lane.TURBO: "served first, costs twice as much",
    Lane.FAST: "normal priority and cost",
    Lane.RELAX: "free, served when the GPU is idle",
}


def describe_preferences(preferences: Preferences, server_model: str, server_lane: str) -> str:
    lane = preferences.lane.value if preferences.lane else server_lane
    return "\n".join(
        [
            f"**Model:** {preferences.model or f'{server_model} (server default)'}",
            f"**Lane:** {lane}",
            f"**Aspect ratio:** {preferences.aspect or '1:1 (default)'}",
            f"**Steps:** {preferences.steps or 'model default'}",
            f"**Sampler:** {preferences.sampler or 'euler_a (default)'}",
        ]
    )


class SettingsView(discord.ui.View):
    """The ephemeral /settings panel: one select per preference, saved as soon as it changes."""

    def __init__(self, bot: ImagineBot, interaction: discord.Interaction[Any], preferences: Preferences) -> None:
        super().__init__(timeout=600)
        self.bot = bot
        self.user_id = interaction.user.id
        settings = bot.settings
        members = bot.service.member
        models = sorted(members.models(actor_of(interaction)))[:24]
        self._add_select("model", "Model", [DEFAULT, *models], preferences.model)
        lane = preferences.lane.value if preferences.lane else None
        self._add_select("lane", "Default lane", [lane.value for lane in Lane], lane)
        self._add_select("aspect", "Aspect ratio", [DEFAULT, *ASPECTS], preferences.aspect)
        steps = [str(step) for step in STEP_CHOICES if step <= settings.max_steps]
        self._add_select("steps", "Steps", [DEFAULT, *steps], str(preferences.steps) if preferences.steps else None)
        self._add_select("sampler", "Sampler", [DEFAULT, *members.samplers()], preferences.sampler)

    def _add_select(self, key: str, placeholder: str, values: list[str], current: str | None) -> None:
        select: discord.ui.Select[SettingsView] = discord.ui.Select(
            custom_id=f"settings:{key}",
            placeholder=placeholder,
            options=[
                discord.SelectOption(label=f"{placeholder}: {value}", value=value, default=value == current)
                for value in values
            ],
        )

        async def chosen(interaction: discord.Interaction[Any]) -> None:
            await self._save(interaction, key, select.values[0])

        select.callback = chosen  # type: ignore[method-assign]
        self.add_item(select)

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:
        return interaction.user.id == self.user_id

    async def _save(self, interaction: discord.Interaction[Any], key: str, value: str) -> None:
        chosen = None if value == DEFAULT else value
        try:  # the core checks it like the flag it stands for (a crafted select may send anything)
            preferences = await self.bot.service.member.update_preferences(actor_of(interaction), **{key: chosen})
        except ImagineError as error:
            await send_error(interaction, str(error))
            return
        settings = self.bot.settings
        await interaction.response.edit_message(
            content="Saved. Your settings:\n" + describe_preferences(preferences, settings.model, settings.default_lane)
        )


class MemberCog(commands.Cog):
    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot

    @app_commands.command(
        name="settings", description="Choose your default model, lane, aspect ratio, steps and sampler"
    )
    @app_commands.guild_only()
    async def settings_panel(self, interaction: discord.Interaction[Any]) -> None:
        preferences = await self.bot.service.member.preferences(actor_of(interaction))
        settings = self.bot.settings
        await interaction.response.send_message(
            "Your settings (flags in a prompt always win):\n"
            + describe_preferences(preferences, settings.model, settings.default_lane),
            view=SettingsView(self.bot, interaction, preferences),
            ephemeral=True,
        )

    @app_commands.command(name="info", description="Your settings, jobs and place in the queue")
    @app_commands.guild_only()
    async def info(self, interaction: discord.Interaction[Any]) -> None:
        overview = await self.bot.service.member.overview(actor_of(interaction))
        settings = self.bot.settings
        lines = [
            f"**Balance:** {overview.balance} credits · **Tier:** {overview.tier}"
            + (" · **banned**" if overview.banned else ""),
            describe_preferences(overview.preferences, settings.model, settings.default_lane),
        ]
        if overview.jobs:
            lines.append("**Your jobs:**")
            for place in overview.jobs:
                job = place.job
                where = f"queued, position {place.position}" if place.position else "rendering"
                lines.append(f"`{job.id}` {job.params.prompt[:60]} — {where} ({job.lane.value})")
        else:
            lines.append("No jobs running or queued.")
        await interaction.response.send_message("\n".join(lines)[:2000], ephemeral=True)

    @app_commands.command(name="cancel", description="Cancel one of your jobs (refunded); your newest if none given")
    @app_commands.describe(job="The job number shown by /info")
    @app_commands.guild_only()
    async def cancel(self, interaction: discord.Interaction[Any], job: int | None = None) -> None:
        cancelled = await self.bot.service.member.cancel(actor_of(interaction), job)
        refund = f" {cancelled.cost} credits refunded." if cancelled.cost else ""
        await interaction.response.send_message(f"Job `{cancelled.id}` cancelled.{refund}", ephemeral=True)

    @app_commands.command(name="queue", description="How busy the image queue is")
    @app_commands.guild_only()
    async def queue(self, interaction: discord.Interaction[Any]) -> None:
        summary = await self.bot.service.member.queue(actor_of(interaction))
        await interaction.response.send_message(queue_headline(summary))

    async def _switch_lane(self, interaction: discord.Interaction[Any], lane: Lane) -> None:
        await self.bot.service.member.update_preferences(actor_of(interaction), lane=lane)
        await interaction.response.send_message(
            f"Your jobs now go to the **{lane.value}** lane ({LANE_HELP[lane]}). "
            f"Add --fast, --relax or --turbo to a prompt to change it for one job.",
            ephemeral=True,
        )

    @app_commands.command(name="fast", description="Use the fast lane by default")
    @app_commands.guild_only()
    async def fast(self, interaction: discord.Interaction[Any]) -> None:
        await self._switch_lane(interaction, Lane.FAST)

    @app_commands.command(name="relax", description="Use the free relax lane by default")
    @app_commands.guild_only()
    async def relax(self, interaction: discord.Interaction[Any]) -> None:
        await self._switch_lane(interaction, Lane.RELAX)

    @app_commands.command(name="turbo", description="Use the turbo lane by default")
    @app_commands.guild_only()
    async def turbo(self, interaction: discord.Interaction[Any]) -> None:
        await self._switch_lane(interaction, Lane.TURBO)


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(MemberCog(bot))
