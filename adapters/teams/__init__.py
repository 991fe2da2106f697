"""Microsoft Teams: botbuilder's CloudAdapter behind the neutral ports of adapters.base."""
