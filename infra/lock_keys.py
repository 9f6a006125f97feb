"""Every PostgreSQL advisory lock key the server takes, in one place so none is taken twice.

Singletons (one leader among all server instances) hold theirs for as long as they lead.
"""

SCHEMA = 7310001  # creating or upgrading the schema
RELAY = 7310002  # the JetStream relay
ANALYTICS = 7310003  # the analytics projection's follower
ANNOTATION_INDEX = 7310004  # the cross-job annotation index's follower
QUALITY = 7310005  # the quality reports' follower
WEBHOOKS = 7310040  # the webhook dispatcher
INSTANCE_SPACE = 7310100  # the first key of the two-key locks naming server instances
