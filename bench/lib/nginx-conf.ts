/**
 * The http-block lines every bench nginx needs so that it writes nothing outside its own prefix (Debian's
 * defaults point at /var/lib/nginx, which a bench must not touch).
 */
export function nginxTempPaths(prefix: string): string {
  return ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']
    .map((k) => `${k}_temp_path ${prefix}/${k === 'client_body' ? 'body' : k};`)
    .join('\n  ');
}
