import path from "node:path";
import { describe, expect, it } from "vitest";
import { mosquittoConfig } from "../../agent/transports/mqtt/localBroker.js";

describe("mosquittoConfig: the mosquitto the agent starts", () => {
  it("turns Nagle's algorithm off, listens on the bind only and persists in the state dir", () => {
    const conf = mosquittoConfig({ host: "127.0.0.1", port: 1883, dataDir: "/srv/state/mosquitto", runAsRoot: false }).split("\n");
    // Without it every question after the first on a connection waited about 45 ms (README, Speed).
    expect(conf).toContain("set_tcp_nodelay true");
    expect(conf).toContain("listener 1883 127.0.0.1");
    expect(conf).toContain(`persistence_location /srv/state/mosquitto${path.sep}`);
    expect(conf).toContain("allow_anonymous true");
    expect(conf).not.toContain("user root");
  });

  it("with a password file, refuses anonymous clients", () => {
    const conf = mosquittoConfig({ host: "0.0.0.0", port: 1884, dataDir: "/d", passwordFile: "/d/passwd", runAsRoot: true }).split("\n");
    expect(conf).toContain("password_file /d/passwd");
    expect(conf).not.toContain("allow_anonymous true");
    expect(conf).toContain("user root");
  });
});
