/**
 * Every topic of the MQTT API (README "MQTT API"), built here and nowhere else: the
 * transport, `ask --via`, `smoke` and `bench` all take their topics from these functions.
 */

/** The last level of the topics an agent owns under `<prefix>/<agentId>/` (and a fleet under `<prefix>/fleet/<group>/`). */
export const AGENT_TOPIC_SUFFIXES = ["ask", "cancel", "scpi", "status", "health"] as const;

const OWN_TOPIC = new RegExp(`/(${AGENT_TOPIC_SUFFIXES.join("|")})$`);

/** The topics of one agent, `<prefix>/<agentId>/...`. */
export interface AgentTopics {
  /** `<prefix>/<agentId>`. */
  readonly base: string;
  readonly ask: string;
  readonly cancel: string;
  readonly scpi: string;
  /** Retained online/offline status; also the last will. */
  readonly status: string;
  readonly health: string;
  /** Replies with no other route go to `<answer>/<id>`. */
  readonly answer: string;
  /** `<base>/answer/<id>`. */
  answerFor(id: string): string;
  /** `smoke`'s private echo topic. */
  smoke(tag: string): string;
  /** Where `bench`'s own requester takes its replies: `<base>/bench-replies` and one level below it per request. */
  readonly benchReplies: string;
}

export function agentTopics(prefix: string, agentId: string): AgentTopics {
  const base = `${prefix}/${agentId}`;
  return {
    base,
    ask: `${base}/ask`,
    cancel: `${base}/cancel`,
    scpi: `${base}/scpi`,
    status: `${base}/status`,
    health: `${base}/health`,
    answer: `${base}/answer`,
    answerFor: (id) => `${base}/answer/${id}`,
    smoke: (tag) => `${base}/smoke/${tag}`,
    benchReplies: `${base}/bench-replies`,
  };
}

/** The topics of a `--fleet` group: one of its agents answers each question. */
export interface FleetTopics {
  /** `<prefix>/fleet/<group>`. */
  readonly base: string;
  readonly ask: string;
  readonly cancel: string;
  /** The shared subscription an agent of the group takes for `ask`. */
  readonly sharedAsk: string;
}

export function fleetTopics(prefix: string, fleet: string): FleetTopics {
  const base = `${prefix}/fleet/${fleet}`;
  return { base, ask: `${base}/ask`, cancel: `${base}/cancel`, sharedAsk: `$share/${fleet}/${base}/ask` };
}

/** What an agent subscribes to: its request topics, its own status (another agent that comes online under this id shows up there), its fleet's. */
export function agentSubscriptions(own: AgentTopics, fleet: FleetTopics | undefined): string[] {
  return [own.ask, own.cancel, own.scpi, own.status, ...(fleet ? [fleet.sharedAsk, fleet.cancel] : [])];
}

/** Where `ask --via` takes its replies. */
export function clientReplyTopic(prefix: string, clientId: string): string {
  return `${prefix}/client/${clientId}/reply`;
}

/** Whether `topic` is some agent's (or fleet's) ask, cancel, scpi, status or health topic under `prefix`. */
export function isAgentOwnTopic(topic: string, prefix: string): boolean {
  return topic.startsWith(`${prefix}/`) && OWN_TOPIC.test(topic);
}
