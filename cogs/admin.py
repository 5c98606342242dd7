"""/admin: moderator commands. Visible to Manage Server by default, and checked again at run time."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands
from discord.ext import commands

from bot.core import ImagineError, QueueSummary, engine_lines, engines_headline
from cogs.actors import actor_of
from cogs.errors import NotModeratorError

if TYPE_CHECKING:
    from bot.discord_surface.discord_bot import ImagineBot


MESSAGE_LIMIT = 2000
"""Characters of one Discord message."""


def _split(words: str) -> list[str]:
    return [part.strip() for part in words.split(",") if part.strip()]


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class AdminCog(commands.GroupCog, group_name="admin", group_description="Moderate the image bot"):
    blocklist = app_commands.Group(name="blocklist", description="Words prompts may not contain")
    channels = app_commands.Group(name="channels", description="Where the bot may be used")
    credits = app_commands.Group(name="credits", description="Change a member's credits")

    def __init__(self, bot: ImagineBot) -> None:
        self.bot = bot
        super().__init__()

    async def interaction_check(self, interaction: discord.Interaction[Any]) -> bool:  # type: ignore[override]
        if not self.bot.service.admin.may_moderate(actor_of(interaction)):
            raise NotModeratorError()
        return True

    @blocklist.command(name="add", description="Block words or phrases (comma separated)")
    @app_commands.describe(words="for example: gore, blood", reason="why (kept in the audit log)")
    async def blocklist_add(self, interaction: discord.Interaction[Any], words: str, reason: str = "") -> None:
        added = await self.bot.service.admin.block(actor_of(interaction), _split(words), reason)
        text = f"Blocked: {', '.join(f'`{w}`' for w in added)}" if added else "Those words were already blocked."
        await interaction.response.send_message(text, ephemeral=True)

    @blocklist.command(name="remove", description="Unblock words or phrases (comma separated)")
    async def blocklist_remove(self, interaction: discord.Interaction[Any], words: str, reason: str = "") -> None:
        removed = await self.bot.service.admin.unblock(actor_of(interaction), _split(words), reason)
        text = f"Unblocked: {', '.join(f'`{w}`' for w in removed)}" if removed else "None of those were blocked."
        await interaction.response.send_message(text, ephemeral=True)

    @blocklist.command(name="list", description="Show the blocked words")
    async def blocklist_list(self, interaction: discord.Interaction[Any]) -> None:
        words = await self.bot.service.admin.blocked(actor_of(interaction))
        text = ("Blocked: " + ", ".join(f"`{w}`" for w in words)) if words else "The blocklist is empty."
        await interaction.response.send_message(text[:2000], ephemeral=True)

    @channels.command(name="allow", description="Allow the bot in a channel (then only allowed channels work)")
    async def channels_allow(
        self, interaction: discord.Interaction[Any], channel: discord.TextChannel, reason: str = ""
    ) -> None:
        await self._set_channel(interaction, channel, allowed=True, reason=reason)

    @channels.command(name="deny", description="Keep the bot out of a channel")
    async def channels_deny(
        self, interaction: discord.Interaction[Any], channel: discord.TextChannel, reason: str = ""
    ) -> None:
        await self._set_channel(interaction, channel, allowed=False, reason=reason)

    async def _set_channel(
        self, interaction: discord.Interaction[Any], channel: discord.TextChannel, *, allowed: bool, reason: str
    ) -> None:
        if channel.guild.id != interaction.guild_id:
            raise ImagineError("that channel is not in this server")
        await self.bot.service.admin.set_channel(actor_of(interaction), channel.id, allowed=allowed, reason=reason)
        verb = "allowed in" if allowed else "kept out of"
        await interaction.response.send_message(f"The image bot is now {verb} {channel.mention}.", ephemeral=True)

    # --- credits, tiers, bans -------------------------------------------------------------------------------

    async def _change_credits(
        self,
        interaction: discord.Interaction[Any],
        action: Literal["give", "take", "set"],
        member: discord.Member,
        amount: int,
        reason: str,
    ) -> None:
        balance = await self.bot.service.admin.change_credits(actor_of(interaction), action, member.id, amount, reason)
        await interaction.response.send_message(
            f"{action.title()} {amount} credits: {member.mention} now has **{balance}**.",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @credits.command(name="give", description="Give a member credits")
    async def credits_give(
        self,
        interaction: discord.Interaction[Any],
        member: discord.Member,
        amount: app_commands.Range[int, 1, 10_000_000],
        reason: str,
    ) -> None:
        await self._change_credits(interaction, "give", member, amount, reason)

    @credits.command(name="take", description="Take credits from a member")
    async def credits_take(
        self,
        interaction: discord.Interaction[Any],
        member: discord.Member,
        amount: app_commands.Range[int, 1, 10_000_000],
        reason: str,
    ) -> None:
        await self._change_credits(interaction, "take", member, amount, reason)

    @credits.command(name="set", description="Set a member's balance")
    async def credits_set(
        self,
        interaction: discord.Interaction[Any],
        member: discord.Member,
        amount: app_commands.Range[int, 0, 10_000_000],
        reason: str,
    ) -> None:
        await self._change_credits(interaction, "set", member, amount, reason)

    @app_commands.command(name="tier", description="Move a member to a tier")
    async def tier(
        self, interaction: discord.Interaction[Any], member: discord.Member, tier: str, reason: str = ""
    ) -> None:
        account = await self.bot.service.admin.set_tier(actor_of(interaction), member.id, tier, reason)
        await interaction.response.send_message(
            f"{member.mention} is now on the **{account.tier}** tier (balance {account.balance}).",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @tier.autocomplete("tier")
    async def _complete_tier(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=name, value=name)
            for name in sorted(self.bot.settings.tiers)
            if current.lower() in name.lower()
        ][:25]

    @app_commands.command(name="ban", description="Stop a member from using the bot")
    async def ban(self, interaction: discord.Interaction[Any], member: discord.Member, reason: str) -> None:
        await self.bot.service.admin.set_banned(actor_of(interaction), member.id, True, reason)
        await interaction.response.send_message(
            f"{member.mention} can no longer use the image bot.",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @app_commands.command(name="unban", description="Let a banned member use the bot again")
    async def unban(self, interaction: discord.Interaction[Any], member: discord.Member, reason: str) -> None:
        await self.bot.service.admin.set_banned(actor_of(interaction), member.id, False, reason)
        await interaction.response.send_message(
            f"{member.mention} can use the image bot again.",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    # --- queue control -----------------------------------------------------------------------------------

    @app_commands.command(name="queue", description="Every queued and running job")
    async def queue(self, interaction: discord.Interaction[Any]) -> None:
        listing = await self.bot.service.admin.queue(actor_of(interaction))
        summary = listing.summary
        lines = [queue_headline(summary)]
        lines += [f"▶️ `{job.id}` <@{job.user_id}> {job.kind.value} ({job.lane.value})" for job in listing.running]
        for job in listing.queued:
            lines.append(f"⏳ `{job.id}` <@{job.user_id}> {job.kind.value} ({job.lane.value}) {job.params.prompt[:40]}")
        await interaction.response.send_message(
            "\n".join(lines)[:2000], ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
        )

    @app_commands.command(name="cancel", description="Cancel any job (refunded)")
    async def cancel(self, interaction: discord.Interaction[Any], job: int, reason: str = "") -> None:
        cancelled = await self.bot.service.admin.cancel(actor_of(interaction), job, reason)
        await interaction.response.send_message(
            f"Job `{job}` of <@{cancelled.user_id}> cancelled and refunded ({cancelled.cost} credits).",
            ephemeral=True,
            allowed_mentions=discord.AllowedMentions.none(),
        )

    @app_commands.command(name="pause", description="Stop starting jobs (queued jobs are kept)")
    async def pause(self, interaction: discord.Interaction[Any], reason: str = "") -> None:
        await self.bot.service.admin.pause(actor_of(interaction), reason)
        await interaction.response.send_message("The queue is paused; queued jobs are kept.", ephemeral=True)

    @app_commands.command(name="resume", description="Start jobs again")
    async def resume(self, interaction: discord.Interaction[Any], reason: str = "") -> None:
        await self.bot.service.admin.resume(actor_of(interaction), reason)
        await interaction.response.send_message("The queue is running again.", ephemeral=True)

    @app_commands.command(name="stats", description="Jobs, members and credits of the last 24 hours; the engines")
    async def stats(self, interaction: discord.Interaction[Any]) -> None:
        actor = actor_of(interaction)
        report = await self.bot.service.admin.stats(actor)
        engines = await self.bot.service.admin.engines(actor)
        median = f"{report.median_seconds:.1f} s" if report.median_seconds is not None else "—"
        text = (
            f"**Last 24 h:** {report.jobs} jobs from {report.members} members — {report.completed} completed, "
            f"{report.failed} failed, {report.cancelled} cancelled. Median render {median}. "
            f"Credits spent {report.credits_spent}, refunded {report.credits_refunded}."
            f"\n**Engines:** {engines_headline(engines)}"
        )
        lines = engine_lines(engines, MESSAGE_LIMIT - len(text) - 1, prefix="• ")
        await interaction.response.send_message("\n".join([text, *lines]), ephemeral=True)


def queue_headline(summary: QueueSummary) -> str:
    state = "⏸️ paused" if summary.paused else "▶️ running"
    lanes = ", ".join(f"{lane} {count}" for lane, count in summary.queued.items())
    return f"Queue {state}: {len(summary.running)} rendering, {summary.total_queued} waiting ({lanes})"


async def setup(bot: ImagineBot) -> None:
    await bot.add_cog(AdminCog(bot))
