/** What `palisade demo` prints once running (admin/demo-cli.ts): both syslog listeners, each with a logger command. */
import { describe, expect, it } from 'vitest';
import { demoText } from '../../admin/demo-cli.js';

describe('the demo text', () => {
  it('names the UDP and TCP syslog listeners, each with a logger command for its port', () => {
    const lines = demoText(
      {
        dir: '/tmp/d',
        url: 'https://127.0.0.1:8443',
        apiKey: 'k',
        caCert: '/tmp/d/ca.pem',
        tunnel: '127.0.0.1:4000',
        intranet: { host: '127.0.0.1', family: 4, port: 4001 },
        syslog: 'udp:127.0.0.1:5514',
        syslogTcp: 'tcp:127.0.0.1:5515',
      },
      '/p/bin/palisade.js',
    );
    expect(lines).toContain('          syslog on udp:127.0.0.1:5514 and tcp:127.0.0.1:5515');
    const tcp = lines.find((l) => l.includes('logger --tcp'));
    expect(tcp).toMatch(/^ {2}logger --tcp -n 127\.0\.0\.1 -P 5515 --octet-count --rfc5424 '[^']+' {3}# TCP$/);
    expect(lines.find((l) => l.includes('logger -n'))).toContain('-P 5514 -d');
  });
});
