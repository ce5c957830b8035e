"""Frames, constants and quaternion helpers (plain tuples, no numpy).

Conventions (the flight code relies on them):

* MCI: Moon-centred inertial frame. With ``moon_rotation`` off (the default)
  the Moon-fixed frame coincides with MCI at all times.
* Landing site: ``SiteFrame(lat, lon, radius)``; with lat = lon = 0 the site
  is on the MCI +x axis, local up = +x, east = +y, north = +z.
* Local site coordinates (east, north, up) are a *Cartesian* tangent-plane
  frame (ENU) with its origin at the site's surface point on the reference
  sphere: ``r_mci = site_r + east*E + north*N + up*U``. ``up`` is height
  above the tangent plane, not altitude (they differ by about d^2 / 2R:
  65 m at 15 km from the site, 0.07 m at 500 m).
* Quaternions are scalar first ``(w, x, y, z)``; ``q_mci_body`` rotates body
  vectors into MCI: ``v_mci = quat_rotate(q_mci_body, v_body)``.
* Body +z is the main-engine thrust direction; an upright lander has body +z
  along local up. ``SiteFrame.q_upright()`` also puts body +x east and body +y
  north.
* SI units everywhere.

Everything here works on tuples of Python floats: in the per-step path a
numpy call on a 3-vector costs more than the arithmetic it does.
"""

from __future__ import annotations

import math

MOON_GM = 4.9028e12          # m^3/s^2
MOON_RADIUS = 1737400.0      # m, mean radius (reference sphere)
G0 = 9.80665                 # m/s^2, standard gravity (Isp conversion)
# Sidereal rotation of the Moon: 27.321661 d.
MOON_ROTATION_RATE = 2.0 * math.pi / (27.321661 * 86400.0)  # rad/s about MCI +z

Vec3 = tuple  # (x, y, z) floats
Quat = tuple  # (w, x, y, z) floats


# ---------------------------------------------------------------- vectors
def vadd(a, b):
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2])


def vsub(a, b):
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


def vscale(a, s):
    return (a[0] * s, a[1] * s, a[2] * s)


def vdot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def vcross(a, b):
    return (a[1] * b[2] - a[2] * b[1],
            a[2] * b[0] - a[0] * b[2],
            a[0] * b[1] - a[1] * b[0])


def vnorm(a):
    return math.sqrt(a[0] * a[0] + a[1] * a[1] + a[2] * a[2])


def vunit(a):
    n = vnorm(a)
    if n == 0.0:
        raise ValueError("cannot normalise a zero vector")
    return (a[0] / n, a[1] / n, a[2] / n)


# ------------------------------------------------------------- quaternions
def quat_mul(a, b):
    """Hamilton product a*b (scalar first). quat_rotate(a*b, v) = a(b(v))."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return (aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw)


def quat_conj(q):
    return (q[0], -q[1], -q[2], -q[3])


def quat_normalize(q):
    n = math.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
    if n == 0.0:
        raise ValueError("cannot normalise a zero quaternion")
    return (q[0] / n, q[1] / n, q[2] / n, q[3] / n)


def quat_rotate(q, v):
    """Rotate vector v by unit quaternion q: returns q v q*.

    With q = q_mci_body this maps body-frame vectors into MCI.
    """
    w, x, y, z = q
    vx, vy, vz = v
    # t = 2 (q_vec x v); v' = v + w t + q_vec x t
    tx = 2.0 * (y * vz - z * vy)
    ty = 2.0 * (z * vx - x * vz)
    tz = 2.0 * (x * vy - y * vx)
    return (vx + w * tx + (y * tz - z * ty),
            vy + w * ty + (z * tx - x * tz),
            vz + w * tz + (x * ty - y * tx))


def quat_rotate_inv(q, v):
    """Rotate v by the inverse of q (MCI -> body for q = q_mci_body)."""
    return quat_rotate((q[0], -q[1], -q[2], -q[3]), v)


def quat_from_axis_angle(axis, angle_rad):
    """Rotation of angle_rad (right hand) about axis (need not be unit)."""
    ax = vunit(axis)
    s = math.sin(0.5 * angle_rad)
    return (math.cos(0.5 * angle_rad), ax[0] * s, ax[1] * s, ax[2] * s)


def quat_to_dcm(q):
    """3x3 rotation matrix (tuple of rows) with v' = M v equal to quat_rotate(q, v)."""
    w, x, y, z = q
    return ((1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
            (2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
            (2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)))


def quat_from_dcm(m):
    """Unit quaternion (w >= 0) from a proper rotation matrix (rows)."""
    m00, m01, m02 = m[0]
    m10, m11, m12 = m[1]
    m20, m21, m22 = m[2]
    tr = m00 + m11 + m22
    if tr > 0.0:
        s = math.sqrt(tr + 1.0) * 2.0
        q = (0.25 * s, (m21 - m12) / s, (m02 - m20) / s, (m10 - m01) / s)
    elif m00 > m11 and m00 > m22:
        s = math.sqrt(1.0 + m00 - m11 - m22) * 2.0
        q = ((m21 - m12) / s, 0.25 * s, (m01 + m10) / s, (m02 + m20) / s)
    elif m11 > m22:
        s = math.sqrt(1.0 + m11 - m00 - m22) * 2.0
        q = ((m02 - m20) / s, (m01 + m10) / s, 0.25 * s, (m12 + m21) / s)
    else:
        s = math.sqrt(1.0 + m22 - m00 - m11) * 2.0
        q = ((m10 - m01) / s, (m02 + m20) / s, (m12 + m21) / s, 0.25 * s)
    q = quat_normalize(q)
    if q[0] < 0.0:
        q = (-q[0], -q[1], -q[2], -q[3])
    return q


def quat_from_body_axes(x_mci, y_mci, z_mci):
    """q_mci_body for a body whose x, y, z axes point along the given MCI unit vectors."""
    # Columns of the body->MCI matrix are the body axes expressed in MCI.
    m = ((x_mci[0], y_mci[0], z_mci[0]),
         (x_mci[1], y_mci[1], z_mci[1]),
         (x_mci[2], y_mci[2], z_mci[2]))
    return quat_from_dcm(m)


def quat_pointing(z_mci, x_hint_mci):
    """q_mci_body with body +z along z_mci and body +x as close as possible to x_hint_mci."""
    z = vunit(z_mci)
    y = vcross(z, x_hint_mci)
    if vnorm(y) < 1e-9:
        raise ValueError("x_hint_mci is parallel to z_mci")
    y = vunit(y)
    x = vcross(y, z)
    return quat_from_body_axes(x, y, z)


def quat_angle_between(a, b):
    """Rotation angle (rad, 0..pi) of a^-1 b."""
    d = abs(a[0] * b[0] + a[1] * b[1] + a[2] * b[2] + a[3] * b[3])
    return 2.0 * math.acos(min(1.0, d))


# -------------------------------------------------------------- site frame
class SiteFrame:
    """Local East-North-Up frame of a landing site on the reference sphere.

    ``lat_rad``/``lon_rad`` are selenocentric latitude/longitude (Moon-fixed
    frame = MCI at t = 0). The site point is ``radius_m * up_mci``.
    """

    __slots__ = ("lat_rad", "lon_rad", "radius_m", "up_mci", "east_mci",
                 "north_mci", "r_mci")

    def __init__(self, lat_rad: float = 0.0, lon_rad: float = 0.0,
                 radius_m: float = MOON_RADIUS):
        self.lat_rad = float(lat_rad)
        self.lon_rad = float(lon_rad)
        self.radius_m = float(radius_m)
        cl, sl = math.cos(self.lat_rad), math.sin(self.lat_rad)
        co, so = math.cos(self.lon_rad), math.sin(self.lon_rad)
        self.up_mci = (cl * co, cl * so, sl)
        self.east_mci = (-so, co, 0.0)
        self.north_mci = (-sl * co, -sl * so, cl)
        self.r_mci = vscale(self.up_mci, self.radius_m)

    def __repr__(self):
        return (f"SiteFrame(lat_rad={self.lat_rad!r}, lon_rad={self.lon_rad!r}, "
                f"radius_m={self.radius_m!r})")

    # positions --------------------------------------------------------
    def to_mci(self, east: float, north: float, up: float):
        """Local ENU position (m, tangent-plane Cartesian) -> r_mci (m)."""
        E, N, U = self.east_mci, self.north_mci, self.up_mci
        R = self.radius_m + up
        return (E[0] * east + N[0] * north + U[0] * R,
                E[1] * east + N[1] * north + U[1] * R,
                E[2] * east + N[2] * north + U[2] * R)

    def from_mci(self, r_mci):
        """r_mci (m) -> local ENU (east, north, up) in m (tangent-plane Cartesian)."""
        E, N, U = self.east_mci, self.north_mci, self.up_mci
        x, y, z = r_mci
        return (E[0] * x + E[1] * y + E[2] * z,
                N[0] * x + N[1] * y + N[2] * z,
                U[0] * x + U[1] * y + U[2] * z - self.radius_m)

    def surface_en(self, r_mci):
        """(east, north) of the point where the radial line through r_mci meets
        the reference sphere, in the site tangent plane (m). This is the map
        projection the terrain height fields use: a vertical column maps to
        one grid point whatever its altitude."""
        E, N = self.east_mci, self.north_mci
        x, y, z = r_mci
        k = self.radius_m / math.sqrt(x * x + y * y + z * z)
        return ((E[0] * x + E[1] * y + E[2] * z) * k,
                (N[0] * x + N[1] * y + N[2] * z) * k)

    def surface_point_mci(self, east: float, north: float, height_m: float = 0.0):
        """MCI point at height_m above the reference sphere whose radial
        projection has tangent-plane coordinates (east, north)."""
        R = self.radius_m
        u2 = R * R - east * east - north * north
        if u2 <= 0.0:
            raise ValueError("east/north outside the projection's hemisphere")
        p = self.to_mci(east, north, math.sqrt(u2) - R)  # on the sphere
        return vscale(p, (R + height_m) / R)

    # velocities -------------------------------------------------------
    def vel_to_mci(self, v_east: float, v_north: float, v_up: float):
        """Velocity components along the site's E, N, U axes -> MCI (no Moon rotation term)."""
        E, N, U = self.east_mci, self.north_mci, self.up_mci
        return (E[0] * v_east + N[0] * v_north + U[0] * v_up,
                E[1] * v_east + N[1] * v_north + U[1] * v_up,
                E[2] * v_east + N[2] * v_north + U[2] * v_up)

    def vel_from_mci(self, v_mci):
        """MCI vector -> components along the site's (east, north, up) axes."""
        return (vdot(self.east_mci, v_mci), vdot(self.north_mci, v_mci),
                vdot(self.up_mci, v_mci))

    # attitudes --------------------------------------------------------
    def q_upright(self):
        """q_mci_body of an upright lander at the site: body x east, y north, z up."""
        return quat_from_body_axes(self.east_mci, self.north_mci, self.up_mci)

    def horizontal_dir_mci(self, azimuth_rad: float):
        """Unit horizontal vector at azimuth (from north, positive toward east)."""
        c, s = math.cos(azimuth_rad), math.sin(azimuth_rad)
        N, E = self.north_mci, self.east_mci
        return (c * N[0] + s * E[0], c * N[1] + s * E[1], c * N[2] + s * E[2])

    def q_tilted(self, tilt_rad: float, azimuth_rad: float = 0.0, q=None):
        """Tilt an attitude (default: q_upright()) so that body +z leans from
        local up by ``tilt_rad`` toward the horizontal direction at
        ``azimuth_rad`` (from north, positive toward east: pi/2 = east,
        -pi/2 = west). The rotation is about the horizontal axis
        up x h, applied in MCI. Returns q_mci_body."""
        if q is None:
            q = self.q_upright()
        h = self.horizontal_dir_mci(azimuth_rad)
        axis = vcross(self.up_mci, h)
        return quat_normalize(quat_mul(quat_from_axis_angle(axis, tilt_rad), q))

    def q_thrust_along(self, thrust_dir_mci, x_hint_mci=None):
        """q_mci_body with body +z (thrust) along thrust_dir_mci; body +x as close
        to x_hint_mci (default: local north... east if thrust is near north)."""
        if x_hint_mci is None:
            z = vunit(thrust_dir_mci)
            x_hint_mci = self.east_mci
            if abs(vdot(z, x_hint_mci)) > 0.99:
                x_hint_mci = self.north_mci
        return quat_pointing(thrust_dir_mci, x_hint_mci)


def tilt_quat(q_mci_body, tilt_rad: float, axis_body=(1.0, 0.0, 0.0)):
    """Rotate an attitude by tilt_rad about a *body* axis (default body x).

    Returns q_mci_body * q(axis_body, tilt_rad). With the default axis and an
    upright attitude, body +z leans toward body -y (south for q_upright()).
    """
    return quat_normalize(quat_mul(q_mci_body, quat_from_axis_angle(axis_body, tilt_rad)))


def moon_fixed_from_mci(r_mci, t_s: float, omega: float = MOON_ROTATION_RATE):
    """Rotate an MCI vector into the Moon-fixed frame at time t_s
    (the frames coincide at t = 0; the Moon spins about +z at omega)."""
    a = -omega * t_s
    c, s = math.cos(a), math.sin(a)
    x, y, z = r_mci
    return (c * x - s * y, s * x + c * y, z)


def mci_from_moon_fixed(r_fixed, t_s: float, omega: float = MOON_ROTATION_RATE):
    a = omega * t_s
    c, s = math.cos(a), math.sin(a)
    x, y, z = r_fixed
    return (c * x - s * y, s * x + c * y, z)
