import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { iceServerLinks } from '../../src/signaling/index.js';

describe('WebRTC settings', () => {
  it('binds ICE to HOST when it names one address, to every interface otherwise', () => {
    expect(loadConfig({ HOST: '127.0.0.1' }).webrtc.bindAddress).toBe('127.0.0.1');
    expect(loadConfig({ HOST: '0.0.0.0' }).webrtc.bindAddress).toBeUndefined();
    expect(loadConfig({ HOST: 'localhost' }).webrtc.bindAddress).toBeUndefined();
    expect(loadConfig({ HOST: '0.0.0.0', WEBRTC_BIND_ADDRESS: '10.0.0.5' }).webrtc.bindAddress).toBe('10.0.0.5');
  });

  it('reads the port range, public address and ICE servers, and says which setting is wrong', () => {
    const c = loadConfig({
      WEBRTC_UDP_PORT_MIN: '40000',
      WEBRTC_UDP_PORT_MAX: '40100',
      WEBRTC_PUBLIC_ADDRESS: '203.0.113.7',
      WEBRTC_ICE_SERVERS: 'stun:stun.example.org:3478, turn:u:p@turn.example.org:3478',
    });
    expect(c.webrtc).toMatchObject({
      portMin: 40000,
      portMax: 40100,
      publicAddress: '203.0.113.7',
      iceServers: ['stun:stun.example.org:3478', 'turn:u:p@turn.example.org:3478'],
    });
    expect(() => loadConfig({ WEBRTC_UDP_PORT_MIN: '30000', WEBRTC_UDP_PORT_MAX: '30000' })).toThrow(/WEBRTC_UDP_PORT_MIN must be below/);
    expect(() => loadConfig({ WEBRTC_PUBLIC_ADDRESS: 'example.org' })).toThrow(/WEBRTC_PUBLIC_ADDRESS.*IP address/);
    expect(() => loadConfig({ WEBRTC_ICE_SERVERS: 'http://x' })).toThrow(/WEBRTC_ICE_SERVERS/);
    expect(() => loadConfig({ WEBRTC_UDP_PORT_MIN: '80' })).toThrow(/out of range/);
  });

  it('hands ICE servers to clients as Link headers (RFC 9725 4.6)', () => {
    expect(iceServerLinks(['stun:stun.example.org:3478', 'turn:alice:s3cret@turn.example.org:3478?transport=udp'])).toEqual([
      '<stun:stun.example.org:3478>; rel="ice-server"',
      '<turn:turn.example.org:3478?transport=udp>; rel="ice-server"; username="alice"; credential="s3cret"; credential-type="password"',
    ]);
  });
});
