package cplane.access.tools

import rego.v1

# Deny by default: a tool call is allowed only when the agent's role
# lists the tool and the call stays within the agent's tier.
default allow := false

allow if {
	some role in data.roles[input.agent.name]
	input.tool.name in data.tools[role]
	tier_ok
}

tier_ok if input.agent.tier == input.tool.tier

tier_ok if {
	input.agent.tier == "ho2"
	input.tool.tier == "ho1"
}

reasons contains msg if {
	not allow
	msg := sprintf("tool %s is not granted to agent %s", [input.tool.name, input.agent.name])
}
