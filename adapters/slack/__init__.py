"""Slack: slack-bolt's AsyncApp for inbound requests, slack_sdk's AsyncWebClient for sends."""
