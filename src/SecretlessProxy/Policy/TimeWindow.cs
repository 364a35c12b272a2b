namespace SecretlessProxy.Policy;

/// <summary>
/// A policy's <c>When</c> condition: days of the week and a daily window, in one time zone. A window
/// that crosses midnight (22:00-02:00) belongs to the day it starts, so "Fri 22:00-02:00" covers
/// Saturday 01:00 and not Friday 01:00.
/// </summary>
internal sealed class TimeWindow
{
    public TimeWindow(IReadOnlySet<DayOfWeek>? days, TimeOnly? start, TimeOnly? end, TimeZoneInfo timeZone)
    {
        Days = days;
        Start = start;
        End = end;
        TimeZone = timeZone;
    }

    /// <summary>Null means every day.</summary>
    public IReadOnlySet<DayOfWeek>? Days { get; }

    /// <summary>Null (with <see cref="End"/>) means all day.</summary>
    public TimeOnly? Start { get; }

    public TimeOnly? End { get; }

    public TimeZoneInfo TimeZone { get; }

    public ConditionFailure Evaluate(DateTimeOffset now)
    {
        var local = TimeZoneInfo.ConvertTime(now, TimeZone);
        var time = TimeOnly.FromTimeSpan(local.TimeOfDay);
        var day = local.DayOfWeek;
        if (Start is { } start && End is { } end)
        {
            if (start < end)
            {
                if (time < start || time >= end)
                {
                    return ConditionFailure.Hours;
                }
            }
            else if (time < end)
            {
                // The after-midnight part of a window that started yesterday.
                day = day == DayOfWeek.Sunday ? DayOfWeek.Saturday : day - 1;
            }
            else if (time < start)
            {
                return ConditionFailure.Hours;
            }
        }

        return Days is null || Days.Contains(day) ? ConditionFailure.None : ConditionFailure.Day;
    }
}
