//! The commented `helio.yaml` that `helio init` writes.

/// A starting configuration: audit-only (no rules, default allow) with a live
/// dashboard block carrying `api_secret`. Everything else is shown commented
/// out with its default so operators can see what exists.
pub fn scaffold(api_secret: &str) -> String {
    format!(
        r#"# Helio configuration. Reference: docs/configuration.md
# Validate with: helio validate -c helio.yaml
version: "1"

upstream:
  # The MCP server Helio governs (streamable HTTP).
  url: http://localhost:8080/mcp
  transport: streamable-http
  # request_timeout: 30s
  # connect_timeout: 10s
  # headers:                      # sent on every upstream request; ${{VAR}} reads the environment
  #   Authorization: "Bearer ${{UPSTREAM_TOKEN}}"
  # forward_headers: [x-team]     # caller x-* headers copied upstream

# listen:
#   port: 3000
#   host: 127.0.0.1
#   allowed_origins: []          # Origin values allowed on /mcp; empty refuses every Origin

# environment: production

# session:
#   identity:                    # ordered; the first source that yields a value wins
#     - source: header
#       name: x-helio-session-id
#     - source: legacy_header    # the verbatim Mcp-Session-Id
#   on_unresolved: deny          # deny | anonymous

policies:
  # With no rules and default allow, Helio is audit-only: it blocks nothing.
  default: allow
  dry_run: false
  rules: []
  # rules:
  #   - name: block-destructive
  #     match:
  #       annotations: {{ destructiveHint: true }}
  #     action: deny
  #     feedback:
  #       message: Destructive tools are disabled.
  #       suggestion: Ask an operator to run this change.

# budgets:
#   - name: agent-payments
#     limit: 500
#     currency: USD
#     window: 1h
#     key: session
#     contributors:
#       - match: {{ tool: stripe_* }}
#         field: $.amount
#       - match: {{ tool: paypal_* }}
#         field: $.amount

# approval:
#   timeout: 300s
#   default_on_timeout: deny
#   channels: []

# audit:
#   storage: sqlite
#   path: ./helio-audit.db
#   retention: 90d
#   include_responses: true

dashboard:
  enabled: true
  port: 3100
  host: 127.0.0.1
  # The operator API's bearer secret. Rotate it by replacing the value
  # (e.g. `openssl rand -hex 32`) and restarting Helio.
  api_secret: "{api_secret}"

# sdk:
#   enabled: false
#   port: 3200
#   host: 127.0.0.1
"#
    )
}
