-- The fleet: 150 drivers and 120 vehicles, generated deterministically (the same rows on every
-- host). Natural keys (license_number, medallion) make it re-runnable: ON CONFLICT DO NOTHING.

INSERT INTO public.drivers (license_number, first_name, last_name, home_zone_id, vendor_id, hired_on, active)
SELECT
    (5000000 + n * 7919)::text,
    (ARRAY['Maria', 'Jose', 'Mohammed', 'Wei', 'Abdul', 'Carlos', 'Fatima', 'Ivan', 'Priya', 'Kwame',
           'Luis', 'Ana', 'Rahul', 'Olga', 'Samuel', 'Mei', 'Yusuf', 'Grace', 'Dmitri', 'Aisha',
           'Miguel', 'Sofia', 'Hassan', 'Jin', 'Kofi', 'Elena', 'Tariq', 'Rosa', 'Anil', 'Nadia'])[(n * 7) % 30 + 1],
    (ARRAY['Rodriguez', 'Singh', 'Chen', 'Khan', 'Garcia', 'Ahmed', 'Lopez', 'Wang', 'Hossain', 'Martinez',
           'Diallo', 'Ivanova', 'Patel', 'Mensah', 'Kim', 'Hernandez', 'Islam', 'Nguyen', 'Okafor', 'Perez',
           'Rahman', 'Cohen', 'Murphy', 'Sanchez', 'Liu', 'Ali', 'Torres', 'Kowalski', 'Baptiste', 'Romero'])[(n * 11) % 30 + 1],
    (SELECT z.zone_id FROM public.zones AS z
      WHERE z.service_zone IN ('Yellow Zone', 'Boro Zone')
      ORDER BY z.zone_id
      OFFSET (n * 17) % (SELECT count(*) FROM public.zones WHERE service_zone IN ('Yellow Zone', 'Boro Zone'))
      LIMIT 1),
    CASE n % 3 WHEN 0 THEN 1 WHEN 1 THEN 2 ELSE 6 END,
    date '2015-01-05' + (n * 29) % 3650,
    n % 17 <> 0
FROM generate_series(1, 150) AS n
ON CONFLICT DO NOTHING;

INSERT INTO public.vehicles (medallion, plate, make, model, model_year, fuel, wheelchair_accessible, vendor_id, driver_id)
SELECT
    ((n - 1) / 26 + 1)::text || chr(65 + (n - 1) % 26) || lpad(((n * 37) % 100)::text, 2, '0'),
    'T' || (700000 + n * 13)::text || 'C',
    m.make,
    m.model,
    2016 + n % 9,
    m.fuel,
    m.accessible,
    CASE n % 3 WHEN 0 THEN 1 WHEN 1 THEN 2 ELSE 6 END,
    (SELECT d.driver_id FROM public.drivers AS d WHERE d.license_number = (5000000 + n * 7919)::text)
FROM generate_series(1, 120) AS n
JOIN (VALUES
    (0, 'Toyota', 'Camry Hybrid', 'hybrid', false),
    (1, 'Toyota', 'RAV4 Hybrid', 'hybrid', false),
    (2, 'Ford', 'Escape Hybrid', 'hybrid', false),
    (3, 'Nissan', 'NV200', 'gasoline', true),
    (4, 'Tesla', 'Model Y', 'electric', false),
    (5, 'Kia', 'Niro EV', 'electric', false),
    (6, 'Hyundai', 'Ioniq 5', 'electric', false),
    (7, 'Toyota', 'Sienna Hybrid', 'hybrid', true),
    (8, 'Ford', 'Transit Connect', 'gasoline', true),
    (9, 'Lincoln', 'Corsair Hybrid', 'hybrid', false)
) AS m (k, make, model, fuel, accessible) ON m.k = n % 10
ON CONFLICT DO NOTHING;
